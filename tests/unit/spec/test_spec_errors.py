"""Every kind of bad input gets one exact, located, human message; all of them are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.spec import SpecError, SpecErrors, load_desired
from tests.unit.spec.spec_testing import STORES, SpecDir


def test_unknown_key(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    specs.write(
        "layout.yaml",
        """\
        mappings:
          - name: raw
            from: staging:raw
            to: lake:raw/
            pruen: true
        """,
    )

    assert specs.errors() == [
        'specs/layout.yaml:5: mappings[0].pruen: unknown key "pruen" (expected one of: authority, exclude, from, '
        "include, keep_local, min_size, name, protect, prune, prune_local, release_local, to)"
    ]


def test_unknown_top_level_and_store_keys(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES.replace("    bucket: pixel-data\n", "    bucket: pixel-data\n    regoin: x\n"))
    specs.write("extra.yaml", "store: {}\n")

    assert specs.errors() == [
        'specs/extra.yaml:1: store: unknown key "store" (expected one of: actors, datasets, final_dataset, inventory, '
        'mappings, stores, tiers, version)',
        'specs/stores.yaml:5: stores.lake.regoin: unknown key "regoin" (expected one of: addressing_style, bucket, '
        "checksum, connect_timeout, credentials_env, endpoint, inventory, lock_key, profile, read_timeout, region, "
        "type)",
    ]


def test_wrong_type(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    specs.write(
        "layout.yaml",
        """\
        mappings:
          - name: raw
            from: staging:raw
            to: lake:raw/
            prune: yes
            include: "*.json"
        """,
    )

    assert specs.errors() == [
        'specs/layout.yaml:5: mappings[0].prune: expected boolean, got string "yes"',
        'specs/layout.yaml:6: mappings[0].include: expected list, got string "*.json"',
    ]


def test_bad_enum_bucket_and_missing_key(specs: SpecDir) -> None:
    specs.write(
        "stores.yaml",
        """\
        stores:
          lake:
            type: s3
            bucket: Pixel_Data
            addressing_style: sideways
          cloud:
            type: gcs
          staging:
            type: local
        """,
    )

    assert specs.errors() == [
        "specs/stores.yaml:4: stores.lake.bucket: expected an S3 bucket name (3 to 63 lowercase letters, digits, "
        '"." and "-", starting and ending with a letter or digit), got string "Pixel_Data"',
        'specs/stores.yaml:5: stores.lake.addressing_style: expected "auto", "path" or "virtual", '
        'got string "sideways"',
        'specs/stores.yaml:7: stores.cloud.type: expected "s3" or "local", got string "gcs"',
        'specs/stores.yaml:8: stores.staging: missing required key "root"',
    ]


def test_undefined_store(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    specs.write(
        "layout.yaml",
        """\
        mappings:
          - {name: a, from: "staging:a", to: "lake:a/"}
          - {name: b, from: "staging:b", to: "lake:b/"}
          - name: c
            from: staging:c
            to: nowhere:x
        """,
    )

    assert specs.errors() == [
        'specs/layout.yaml:6: mappings[2].to: expected "store:prefix" naming a defined store, got "nowhere:x" '
        '(store "nowhere" is not defined)'
    ]


def test_store_of_the_wrong_kind(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    specs.write("layout.yaml", 'mappings:\n  - {name: a, from: "lake:a", to: "staging:a"}\n')

    assert specs.errors() == [
        'specs/layout.yaml:2: mappings[0].from: expected "store:path" naming a local store, got "lake:a" '
        '(store "lake" is an s3 store)',
        'specs/layout.yaml:2: mappings[0].to: expected "store:prefix" naming an s3 store, got "staging:a" '
        '(store "staging" is a local store)',
    ]


def test_bad_yaml(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    specs.write(
        "layout.yaml",
        """\
        mappings:
          - name: raw
            from: staging:raw
           to: lake:raw/
        """,
    )

    assert specs.errors() == [
        "specs/layout.yaml:4: invalid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection at line 2)"
    ]


def test_unclosed_flow_sequence(specs: SpecDir) -> None:
    specs.write("layout.yaml", "mappings:\n  - include: [a, b\n")

    assert specs.errors() == [
        "specs/layout.yaml:3: invalid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 2)"
    ]


def test_duplicate_yaml_key(specs: SpecDir) -> None:
    specs.write(
        "stores.yaml",
        """\
        stores:
          lake:
            type: s3
            bucket: pixel-data
            bucket: pixel-other
        """,
    )

    assert specs.errors() == ['specs/stores.yaml:5: stores.lake.bucket: duplicate key "bucket" (first at line 4)']


def test_undefined_env_var(specs: SpecDir) -> None:
    specs.write(
        "stores.yaml",
        """\
        stores:
          lake:
            type: s3
            bucket: pixel-data
            endpoint: ${PIXEL_S3_ENDPOINT}
        """,
    )

    assert specs.errors() == [
        'specs/stores.yaml:5: stores.lake.endpoint: environment variable "PIXEL_S3_ENDPOINT" is not set '
        "(write ${PIXEL_S3_ENDPOINT:-default} to give a default)"
    ]
    assert specs.load({"PIXEL_S3_ENDPOINT": "http://h:1"}).stores["lake"].name == "lake"


def test_dotdot_in_paths_and_keys(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES + "  other:\n    type: s3\n    bucket: abc\n    lock_key: ../lock\n")
    specs.write(
        "layout.yaml",
        """\
        mappings:
          - name: up
            from: staging:../etc
            to: lake:datasets/../secrets/
          - name: abs
            from: staging:/etc
            to: lake:/x
            exclude: [../**]
        """,
    )

    assert specs.errors() == [
        'specs/layout.yaml:3: mappings[0].from: path must not contain ".." segments, got "staging:../etc"',
        'specs/layout.yaml:4: mappings[0].to: prefix must not contain ".." segments, got "lake:datasets/../secrets/"',
        'specs/layout.yaml:6: mappings[1].from: path must not start with "/", got "staging:/etc"',
        'specs/layout.yaml:7: mappings[1].to: prefix must not start with "/", got "lake:/x"',
        'specs/layout.yaml:8: mappings[1].exclude[0]: pattern must not contain ".." segments, got "../**"',
        'specs/stores.yaml:11: stores.other.lock_key: key must not contain ".." segments, got "../lock"',
    ]


def test_overlapping_targets(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES + "  alias:\n    type: s3\n    bucket: pixel-data\n")
    specs.write(
        "layout.yaml",
        """\
        mappings:
          - name: raw
            from: staging:raw
            to: lake:datasets/raw
          - name: all
            from: staging:all
            to: lake:datasets/
          - name: sibling
            from: staging:rawer
            to: lake:datasets/rawer/
          - name: same-bucket
            from: staging:x
            to: alias:datasets/raw/x
        """,
    )

    assert specs.errors() == [
        'specs/layout.yaml:7: mappings[1].to: S3 target "lake:datasets/" overlaps mapping "raw" '
        '("lake:datasets/raw/" at specs/layout.yaml:4)',
        'specs/layout.yaml:10: mappings[2].to: S3 target "lake:datasets/rawer/" overlaps mapping "all" '
        '("lake:datasets/" at specs/layout.yaml:7)',
        'specs/layout.yaml:13: mappings[3].to: S3 target "alias:datasets/raw/x/" overlaps mapping "raw" '
        '("lake:datasets/raw/" at specs/layout.yaml:4, the same bucket "pixel-data")',
        'specs/layout.yaml:13: mappings[3].to: S3 target "alias:datasets/raw/x/" overlaps mapping "all" '
        '("lake:datasets/" at specs/layout.yaml:7, the same bucket "pixel-data")',
    ]


def test_same_bucket_on_different_endpoints_does_not_overlap(specs: SpecDir) -> None:
    specs.write(
        "stores.yaml",
        STORES + "  minio:\n    type: s3\n    bucket: pixel-data\n    endpoint: http://127.0.0.1:9000\n",
    )
    specs.write(
        "layout.yaml",
        'mappings:\n  - {name: a, from: "staging:a", to: "lake:"}\n  - {name: b, from: "staging:b", to: "minio:"}\n',
    )

    assert [m.name for m in specs.load().mappings] == ["a", "b"]


def test_duplicate_mapping_names_across_files(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    specs.write("a.yaml", 'mappings:\n  - {name: raw, from: "staging:a", to: "lake:a/"}\n')
    specs.write("b.yaml", 'mappings:\n  - {name: raw, from: "staging:b", to: "lake:b/"}\n')

    assert specs.errors() == [
        'specs/b.yaml:2: mappings[0].name: duplicate mapping name "raw" (first defined at specs/a.yaml:2)'
    ]


def test_store_defined_in_two_files(specs: SpecDir) -> None:
    specs.write("a.yaml", STORES)
    specs.write("b.yaml", "stores:\n  staging:\n    type: local\n    root: elsewhere\n")

    assert specs.errors() == ['specs/b.yaml:2: stores.staging: store "staging" is already defined at specs/a.yaml:5']


def test_release_local_needs_local_authority(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    specs.write(
        "layout.yaml",
        'mappings:\n  - {name: a, from: "staging:a", to: "lake:a/", authority: s3, release_local: true}\n',
    )

    assert specs.errors() == [
        'specs/layout.yaml:2: mappings[0].release_local: release_local needs authority local (got "s3"): '
        "local files are only released after pixel has uploaded them"
    ]


def test_multiple_errors_are_all_reported_in_file_and_line_order(specs: SpecDir) -> None:
    specs.write(
        "stores.yaml",
        """\
        version: 2
        stores:
          lake:
            type: s3
            bucket: pixel-data
            endpoint: ${EP}
          staging:
            type: local
            root: data
        """,
    )
    specs.write(
        "layout.yaml",
        """\
        mappings:
          - name: raw
            from: staging:raw
            to: nowhere:raw/
            prune: "true"
          - name: raw
            from: staging:../x
            to: lake:x/
            pruen: true
        """,
    )
    specs.write("broken.yaml", "stores: {\n")

    assert specs.errors() == [
        "specs/broken.yaml:2: invalid YAML: expected the node content, but found '<stream end>' "
        "(while parsing a flow node)",
        'specs/layout.yaml:4: mappings[0].to: expected "store:prefix" naming a defined store, got "nowhere:raw/" '
        '(store "nowhere" is not defined)',
        'specs/layout.yaml:5: mappings[0].prune: expected boolean, got string "true"',
        'specs/layout.yaml:6: mappings[1].name: duplicate mapping name "raw" (first defined at specs/layout.yaml:2)',
        'specs/layout.yaml:7: mappings[1].from: path must not contain ".." segments, got "staging:../x"',
        'specs/layout.yaml:9: mappings[1].pruen: unknown key "pruen" (expected one of: authority, exclude, from, '
        "include, keep_local, min_size, name, protect, prune, prune_local, release_local, to)",
        "specs/stores.yaml:1: version: expected 1, got integer 2",
        'specs/stores.yaml:6: stores.lake.endpoint: environment variable "EP" is not set '
        "(write ${EP:-default} to give a default)",
    ]


def test_error_carries_file_line_and_path(specs: SpecDir, tmp_path: Path) -> None:
    specs.write("stores.yaml", "stores:\n  lake: {type: s3}\n")

    with pytest.raises(SpecErrors) as caught:
        specs.load()

    (error,) = caught.value.errors
    assert isinstance(error, SpecError)
    assert (error.file, error.line, error.path) == (tmp_path / "specs" / "stores.yaml", 2, "stores.lake")
    assert error.message == 'missing required key "bucket"'
    assert str(caught.value) == 'specs/stores.yaml:2: stores.lake: missing required key "bucket"'


def test_file_outside_cwd_is_shown_absolute(specs: SpecDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs.write("stores.yaml", "stores: []\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    assert specs.errors() == [f"{tmp_path}/specs/stores.yaml:1: stores: expected mapping, got list"]


def test_missing_spec_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(SpecErrors) as caught:
        load_desired(Path("nope"), {})

    assert caught.value.messages == [
        f"nope: spec directory does not exist (looked for {tmp_path / 'nope'}); run pixel from the directory "
        "that holds it, or name it with --specs DIR"
    ]


def test_empty_spec_directory(specs: SpecDir) -> None:
    specs.write("README.md", "specs go here\n")

    assert specs.errors() == ["specs: no spec files (*.yaml, *.yml) in spec directory"]


def test_unsupported_yaml_tag_and_recursive_alias(specs: SpecDir) -> None:
    specs.write("stores.yaml", "stores:\n  lake: !!binary aGVsbG8=\nmappings: &m [*m]\n")

    assert specs.errors() == [
        "specs/stores.yaml:2: stores.lake: unsupported YAML tag !!binary",
        "specs/stores.yaml:3: mappings[0]: an alias refers to the node that contains it",
    ]
