"""A sound spec directory becomes exactly the Desired state it describes."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from reconciler.model import Authority, Desired, LocalStoreSpec, MappingSpec, S3StoreSpec
from reconciler.spec import load_desired
from tests.unit.spec.spec_testing import STORES, SpecDir

REPO = Path(__file__).resolve().parents[3]


def test_good_spec_loads_into_expected_desired(specs: SpecDir, tmp_path: Path) -> None:
    specs.write(
        "stores.yaml",
        """\
        version: 1
        stores:
          lake:
            type: s3
            bucket: pixel-data
            endpoint: ${S3_ENDPOINT:-http://127.0.0.1:8333}
            region: us-east-1
            addressing_style: path
            checksum: when_required
            profile: training
            lock_key: locks/pixel
          aws:
            type: s3
            bucket: other.bucket-2
          staging:
            type: local
            root: ../data
        """,
    )
    specs.write(
        "layout.yml",
        """\
        mappings:
          - name: raw
            from: staging:raw/
            to: lake:datasets/raw
            include: ["**/*.json", "**/*.jsonl"]
            exclude: [tmp/**]
            prune: true
            protect: true
          - name: images
            from: "staging:"
            to: "aws:"
            authority: s3
          - name: shards
            from: staging:final/shards
            to: lake:final_dataset/
            authority: local
            release_local: true
        """,
    )

    desired = specs.load()

    assert re.fullmatch(r"[0-9a-f]{64}", desired.spec_digest)
    assert dataclasses.replace(desired, spec_digest="") == Desired(
        stores={
            "lake": S3StoreSpec(
                name="lake",
                bucket="pixel-data",
                endpoint="http://127.0.0.1:8333",
                region="us-east-1",
                addressing_style="path",
                checksum="when_required",
                profile="training",
                lock_key="locks/pixel",
            ),
            "aws": S3StoreSpec(name="aws", bucket="other.bucket-2"),
            "staging": LocalStoreSpec(name="staging", root=str(tmp_path / "data")),
        },
        mappings=(
            MappingSpec(
                name="raw",
                local_store="staging",
                local_path="raw",
                s3_store="lake",
                s3_prefix="datasets/raw/",
                include=("**/*.json", "**/*.jsonl"),
                exclude=("tmp/**",),
                authority=Authority.LOCAL,
                prune=True,
                protect=True,
                source_file="specs/layout.yml",
            ),
            MappingSpec(
                name="images",
                local_store="staging",
                local_path="",
                s3_store="aws",
                s3_prefix="",
                authority=Authority.S3,
                source_file="specs/layout.yml",
            ),
            MappingSpec(
                name="shards",
                local_store="staging",
                local_path="final/shards",
                s3_store="lake",
                s3_prefix="final_dataset/",
                release_local=True,
                source_file="specs/layout.yml",
            ),
        ),
    )
    # Exact types, not just equal values: the planner relies on StrEnum and tuples.
    assert type(desired.mappings[0].authority) is Authority
    assert type(desired.mappings[0].include) is tuple


def test_repository_specs_directory_loads() -> None:
    desired = load_desired(REPO / "specs", {})

    assert set(desired.stores) == {"pixel-data", "staging", "story-boards-assets", "workspace"}
    assert desired.stores["pixel-data"] == S3StoreSpec(
        name="pixel-data",
        bucket="pixel-data",
        endpoint="http://127.0.0.1:8333",
        region="us-east-1",
        addressing_style="path",
        checksum="when_required",
    )
    assert desired.stores["staging"] == LocalStoreSpec(name="staging", root=str(REPO / "demo-data" / "gdrive"))
    assert [(m.name, m.s3_store, m.s3_prefix, m.protect) for m in desired.mappings] == [
        # specs/final_dataset.yaml: seed 003's upload of local datasets (files sort by name: final_dataset < layout).
        ("training_ready", "pixel-data", "datasets/local/ai/training_ready/", False),
        ("raw", "pixel-data", "datasets/gdrive/raw/", False),
        ("processed", "pixel-data", "datasets/gdrive/processed/", True),
        # specs/actors.yaml lists one actor by hand; the others are discovered when the stores are opened.
        (
            "actors/0042_european_30_male",
            "story-boards-assets",
            "system_actors/training_data/0042_european_30_male/",
            False,
        ),
    ]
    final = desired.final
    assert final is not None
    assert len(final.sources) == len(desired.datasets)  # every stage of the registry
    assert (final.prefix, final.manifest_key) == ("final_dataset/", "final_dataset/manifest.json")


def test_repository_specs_take_endpoint_and_root_from_env(tmp_path: Path) -> None:
    desired = load_desired(
        REPO / "specs", {"PIXEL_S3_ENDPOINT": "https://s3.example.net", "PIXEL_DATA_ROOT": str(tmp_path)}
    )

    s3 = desired.stores["pixel-data"]
    assert isinstance(s3, S3StoreSpec)
    assert s3.endpoint == "https://s3.example.net"
    assert desired.stores["staging"] == LocalStoreSpec(name="staging", root=str(tmp_path / "gdrive"))


def test_env_interpolation_with_defaults(specs: SpecDir, tmp_path: Path) -> None:
    specs.write(
        "stores.yaml",
        """\
        stores:
          lake:
            type: s3
            bucket: ${BUCKET:-pixel-data}
            endpoint: ${SCHEME:-http}://${HOST}:${PORT:-8333}
            region: ${REGION:-}
          staging:
            type: local
            root: ${ROOT}/$${literal}
        mappings:
          - name: m
            from: staging:${SUBDIR:-raw}
            to: lake:${PREFIX:-datasets}/
            include: ["${EXT:-*.json}"]
        """,
    )

    desired = specs.load({"HOST": "minio", "PORT": "", "ROOT": "/srv", "PREFIX": "v2"})

    assert desired.stores["lake"] == S3StoreSpec(
        name="lake", bucket="pixel-data", endpoint="http://minio:8333", region=None
    )
    assert desired.stores["staging"] == LocalStoreSpec(name="staging", root="/srv/${literal}")
    (mapping,) = desired.mappings
    assert (mapping.local_path, mapping.s3_prefix, mapping.include) == ("raw", "v2/", ("*.json",))


def test_empty_endpoint_from_env_means_aws_default(specs: SpecDir) -> None:
    specs.write("s.yaml", "stores:\n  aws:\n    type: s3\n    bucket: abc\n    endpoint: ${EP:-}\n")

    assert specs.load().stores["aws"] == S3StoreSpec(name="aws", bucket="abc", endpoint=None)


def test_yaml_core_schema_keeps_names_and_strings_as_written(specs: SpecDir) -> None:
    # YAML 1.1 would make `on` a boolean key and 2024-01-01 a date.
    specs.write(
        "s.yaml",
        """\
        stores:
          on: {type: s3, bucket: abc, region: 2024-01-01}
          "2024": {type: local, root: /data}
        """,
    )

    desired = specs.load()

    assert set(desired.stores) == {"on", "2024"}
    assert desired.stores["on"] == S3StoreSpec(name="on", bucket="abc", region="2024-01-01")


def test_merge_keys_share_mapping_settings(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    specs.write(
        "layout.yaml",
        """\
        mappings:
          - &tier {name: raw, from: "staging:raw", to: "lake:raw/", prune: true, include: ["*.json"]}
          - <<: *tier
            name: processed
            from: staging:processed
            to: lake:processed/
            prune: false
        """,
    )

    raw, processed = specs.load().mappings

    assert (processed.name, processed.local_path, processed.s3_prefix) == ("processed", "processed", "processed/")
    assert (processed.prune, processed.include) == (False, ("*.json",))
    assert raw.prune is True


def test_only_top_level_yaml_files_are_read(specs: SpecDir) -> None:
    specs.write("stores.yml", STORES)
    specs.write("notes.txt", "not: [yaml")
    specs.write(".#stores.yaml", "not: [yaml")
    (specs.path / "old").mkdir()
    specs.write("old/broken.yaml", "not: [yaml")

    assert set(specs.load().stores) == {"lake", "staging"}


def test_missing_local_root_is_not_an_error(specs: SpecDir, tmp_path: Path) -> None:
    specs.write("s.yaml", "stores:\n  l:\n    type: local\n    root: /does/not/exist/../really\n")

    assert specs.load().stores["l"] == LocalStoreSpec(name="l", root="/does/not/really")


def _digest(specs: SpecDir, env: dict[str, str] | None = None) -> str:
    return specs.load(env).spec_digest


def test_digest_is_stable_and_ignores_comments_and_layout(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    first = _digest(specs)

    assert _digest(specs) == first
    specs.write("stores.yaml", "# where data lives\n" + STORES.replace("bucket: pixel-data", "bucket:   'pixel-data'"))
    assert _digest(specs) == first
    assert _digest(specs, {"UNUSED": "x"}) == first


def test_digest_changes_when_a_spec_changes(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    first = _digest(specs)

    specs.write("stores.yaml", STORES.replace("root: data", "root: data2"))

    assert _digest(specs) != first


def test_digest_changes_when_a_file_is_renamed(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    first = _digest(specs)

    (specs.path / "stores.yaml").rename(specs.path / "lake.yaml")

    assert _digest(specs) != first


def test_digest_changes_when_an_interpolated_env_value_changes(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES.replace("bucket: pixel-data", "bucket: ${BUCKET:-pixel-data}"))

    default = _digest(specs)
    same_as_default = _digest(specs, {"BUCKET": "pixel-data"})
    other = _digest(specs, {"BUCKET": "pixel-other"})

    assert same_as_default == default
    assert other != default
