"""Issue 27: the seed scripts' loader call forms, on SeaweedFS.

Seed 002 loads `s3://pixel-data/gdrive/processed/...` through `S3DatasetLoader()` (no arguments) and local
files as before; seed 000's sync writes under `datasets/gdrive/...`. Each test is named after the seed
behaviour it proves.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import warnings
from pathlib import Path
from typing import Any

import pytest

from reconciler.dev.world_data import RAW_DATASETS
from reconciler.loader import (
    DatasetChanged,
    DatasetFallbackWarning,
    DatasetNotFound,
    S3DatasetLoader,
    api,
    load_dataset,
    load_dataset_from_s3,
)
from reconciler.loader.offline import NotCachedOffline, OfflineWarning
from tests.integration.demo_world import make_demo
from tests.integration.test_loader import PROCESSED, ids, jsonl, rows, world, write_world_specs

pytestmark = pytest.mark.integration
__all__ = ["world"]  # the fixture, shared with the loader's own integration tests


def dead_endpoint() -> str:
    """An address nothing listens on: every request to S3 is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def url(world: dict[str, Any], key: str) -> str:
    return f"s3://{world['bucket']}/{key}"


def test_seed_002_url_from_the_tier_root_resolves_through_the_processed_tier(world: dict[str, Any]) -> None:
    # Seed 002 names the canonical object from the tier root; the specs keep it under datasets/gdrive/processed/.
    seed_url = url(world, "gdrive/processed/cot_reasoning/clinical_cot.jsonl")
    assert ids(load_dataset(seed_url, world["specs"], cache_dir=world["cache"])) == [f"cot-{i}" for i in range(25)]
    seed_000_url = url(world, f"{PROCESSED}cot_reasoning/shard-1.jsonl")  # seed 000's layout, as stored
    stored = load_dataset(seed_000_url, world["specs"], cache_dir=world["cache"])
    assert ids(stored) == [f"shard1-{i}" for i in range(4)]
    raw = load_dataset(url(world, "gdrive/raw/loose/dataset.json"), world["specs"], cache_dir=world["cache"])
    assert list(raw) == [{"only": "one record"}]
    shards = load_dataset(url(world, "gdrive/processed/cot_reasoning/shard-*.jsonl"), world["specs"],
                          cache_dir=world["cache"])
    assert ids(shards) == [f"shard{s}-{i}" for s in range(3) for i in range(4)]


def test_seed_000_url_resolves_when_the_specs_declare_seed_002s_tier_roots(
    tmp_path: Path, world: dict[str, Any]
) -> None:
    # The other way round: tiers at gdrive/processed/ (seed 002's bucket layout), a URL in seed 000's
    # datasets/gdrive/... form.
    world["put"]("gdrive/processed/cot_reasoning/flat.jsonl", jsonl(rows("flat", 3)))
    specs = tmp_path / "flat-specs"
    write_world_specs(specs, endpoint=world["seaweed"].endpoint, bucket=world["bucket"])
    text = (specs / "world.yaml").read_text().replace("datasets/gdrive/", "gdrive/")
    (specs / "world.yaml").write_text(text)
    ds = load_dataset(url(world, "datasets/gdrive/processed/cot_reasoning/flat.jsonl"), specs, cache_dir=world["cache"])
    assert ids(ds) == [f"flat-{i}" for i in range(3)]


def test_seed_url_of_a_registered_object_not_organised_yet_reads_its_source_with_a_warning(
    world: dict[str, Any]
) -> None:
    with pytest.warns(DatasetFallbackWarning, match=r"crisis.*reading its source .*acquired/crisis\.json"):
        ds = load_dataset(url(world, "gdrive/processed/priority/crisis.json"), world["specs"],
                          cache_dir=world["cache"])
    assert ids(ds) == [f"crisis-{i}" for i in range(7)]


def test_seed_url_naming_an_undeclared_bucket_is_one_error_naming_the_declared_buckets(
    world: dict[str, Any]
) -> None:
    declared = rf"bucket 'pixel-data' is not declared.*declared buckets: {world['bucket']}"
    with pytest.raises(DatasetNotFound, match=declared):
        load_dataset("s3://pixel-data/gdrive/processed/cot_reasoning/clinical_cot.jsonl", world["specs"])
    with pytest.raises(DatasetNotFound, match=r"no object at data:gdrive/processed/cot_reasoning/missing\.jsonl, "
                                              r"data:datasets/gdrive/processed/cot_reasoning/missing\.jsonl"):
        load_dataset(url(world, "gdrive/processed/cot_reasoning/missing.jsonl"), world["specs"])


def test_seed_local_file_paths_load_directly_and_through_the_local_store(
    tmp_path: Path, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seed 002's training scripts stay "backward compatible with local files".
    data = tmp_path / "elsewhere" / "data"
    data.mkdir(parents=True)
    (data / "x.jsonl").write_bytes(jsonl(rows("local", 5)))
    expected = [f"local-{i}" for i in range(5)]
    monkeypatch.chdir(data.parent)
    monkeypatch.setenv("HOME", str(data.parent))
    for form in ("./data/x.jsonl", str(data / "x.jsonl"), "~/data/x.jsonl"):
        assert ids(load_dataset(form, world["specs"], cache_dir=world["cache"])) == expected, form
    work = world["specs"] / "work"
    work.mkdir()
    (work / "kept.jsonl").write_bytes(jsonl(rows("kept", 2)))
    loader = S3DatasetLoader(world["specs"], cache_dir=world["cache"])
    assert ids(loader.load_dataset_from_s3(str(work / "kept.jsonl"))) == ["kept-0", "kept-1"]
    assert ids(loader.load_dataset_from_s3("./data/x.jsonl")) == expected
    # Offline (no S3 at all) a local file is still read: it never needed S3.
    assert ids(load_dataset("./data/x.jsonl", world["specs"], cache_dir=world["cache"], offline=True)) == expected
    with pytest.raises(DatasetNotFound, match=r"no file at .*nothing\.jsonl"):
        load_dataset("./data/nothing.jsonl", world["specs"])


def test_seed_local_file_changed_while_read_is_refused_as_local_reads_are(
    tmp_path: Path, world: dict[str, Any]
) -> None:
    # The same version check as a declared local store's file: changed between resolution and read, refused.
    path = tmp_path / "moving.jsonl"
    path.write_bytes(jsonl(rows("a", 3)))
    ds = load_dataset(str(path), world["specs"], cache_dir=world["cache"])
    path.write_bytes(jsonl(rows("b", 4)))
    os.utime(path, ns=(1, 1))
    with pytest.raises(DatasetChanged, match=r"moving\.jsonl.*changed"):
        list(ds)


def test_seed_s3datasetloader_without_arguments_finds_the_specs_upward_or_by_pixel_specs(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `loader = S3DatasetLoader(); loader.list_datasets(prefix="gdrive/processed/")`, run from a subdirectory.
    repo = tmp_path / "repo"
    write_world_specs(repo / "specs", endpoint=world["seaweed"].endpoint, bucket=world["bucket"])
    deep = repo / "ai" / "training_ready" / "scripts"
    deep.mkdir(parents=True)
    monkeypatch.delenv("PIXEL_SPECS", raising=False)
    monkeypatch.chdir(deep)
    assert api.find_specs() == (repo / "specs").resolve()
    found = S3DatasetLoader(cache_dir=world["cache"]).list_datasets(prefix="gdrive/processed/")
    assert f"{PROCESSED}cot_reasoning/clinical_cot.jsonl" in {d["key"] for d in found}

    nowhere = tmp_path_factory.mktemp("nowhere")  # not below tmp_path, whose specs/ would be found
    monkeypatch.chdir(nowhere)
    monkeypatch.setenv("PIXEL_SPECS", str(world["specs"]))
    assert S3DatasetLoader(cache_dir=world["cache"]).desired.stores["data"].bucket == world["bucket"]  # type: ignore[union-attr]
    monkeypatch.setenv("PIXEL_SPECS", str(nowhere / "gone"))
    with pytest.raises(api.SpecsNotFound, match=r"PIXEL_SPECS=.*gone: no such file"):
        S3DatasetLoader()
    monkeypatch.delenv("PIXEL_SPECS")
    neither = r"PIXEL_SPECS is not set and there is no specs/ directory in .*nowhere"
    with pytest.raises(api.SpecsNotFound, match=neither):
        S3DatasetLoader()


@pytest.mark.slow  # the retry layer's attempts against a refusing endpoint, before the cache stands in
def test_seed_call_forms_serve_the_warm_verified_cache_with_s3_down(
    tmp_path: Path, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The registry pins clinical_cot's md5 (written by apply); S3 then stops answering (its endpoint refuses
    # every connection), and the seed's URL and local forms keep working from the verified cache.
    registry = world["specs"] / "work" / "registry.json"
    registry.parent.mkdir(parents=True, exist_ok=True)
    body = jsonl(rows("cot", 25))
    registry.write_text(json.dumps({"datasets": {"clinical_cot": {"md5": hashlib.md5(body).hexdigest(),
                                                                  "size_bytes": len(body)}}}))
    expected = [f"cot-{i}" for i in range(25)]
    seed_url = url(world, "gdrive/processed/cot_reasoning/clinical_cot.jsonl")
    assert ids(load_dataset(seed_url, world["specs"], cache_dir=world["cache"])) == expected  # warms the cache
    local = tmp_path / "local.jsonl"
    local.write_bytes(jsonl(rows("local", 2)))

    down = tmp_path / "down-specs"
    write_world_specs(down, endpoint=dead_endpoint(), bucket=world["bucket"])
    (down / "work").mkdir()
    (down / "work" / "registry.json").write_text(registry.read_text())
    monkeypatch.setenv("PIXEL_SPECS", str(down))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loader = S3DatasetLoader(cache_dir=world["cache"])
        assert ids(loader.load_dataset_from_s3(seed_url)) == expected
        assert ids(loader.load_dataset_from_s3(str(local))) == ["local-0", "local-1"]
    assert any(w.category is OfflineWarning for w in caught), [str(w.message) for w in caught]
    unpinned = r"S3 is unreachable.*offline, an s3:// URL resolves only when it names a registered"
    with pytest.raises(NotCachedOffline, match=unpinned):
        loader.load_dataset_from_s3(url(world, "gdrive/processed/cot_reasoning/shard-0.jsonl"))
    offline = S3DatasetLoader(cache_dir=world["cache"], offline=True)
    assert ids(offline.load_dataset_from_s3(seed_url)) == expected


@pytest.mark.slow
def test_seed_002_example_call_sequence_runs_against_the_demo_world(
    tmp_path: Path, seaweed: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seed 002's "Next Steps" and "Verification", in order, on the demo world with the repository's specs."""
    demo = make_demo(tmp_path, seaweed, bucket)
    for name, value in demo.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PIXEL_SPECS", raising=False)
    monkeypatch.chdir(demo.specs.parent)  # the seed runs its scripts from the repository

    # 1. `python scripts/verify_s3_access.py`: credentials, the connection, the datasets listed.
    verified = demo.pixel("datasets")
    assert verified.code == 0 and "clinical_cot" in verified.out, verified.out + verified.err
    # 2. `python scripts/update_manifest_s3_paths.py`: the registry gets each dataset's canonical S3 path.
    applied = demo.pixel("apply", "--auto-approve", "-q")
    assert applied.code == 0, applied.out + applied.err
    registry = json.loads((demo.root / "ai" / "data" / "dataset_registry.json").read_text())
    assert "datasets/gdrive/processed/cot_reasoning/clinical_cot.jsonl" in json.dumps(registry["datasets"])
    # 3. `load_dataset_from_s3("dataset.json", category="cot_reasoning")`, here with a file the demo holds.
    expected = RAW_DATASETS["clinical_cot.jsonl"]
    cache = tmp_path / "cache"
    assert load_dataset_from_s3("clinical_cot.jsonl", category="cot_reasoning", cache_dir=cache) == expected
    # 4. "Verification": `loader = S3DatasetLoader(); loader.list_datasets(prefix="gdrive/processed/")`.
    loader = S3DatasetLoader(cache_dir=cache)
    found = loader.list_datasets(prefix="gdrive/processed/")
    keys = {d["key"] for d in found}
    assert {d.key for d in loader.desired.datasets if d.tier == "processed"} <= keys, keys
    # Seed 001's training-script pattern: f"s3://pixel-data/gdrive/processed/{category}/{dataset_name}".
    s3_path = f"s3://{demo.data_bucket}/gdrive/processed/cot_reasoning/clinical_cot.jsonl"
    assert loader.load_dataset_from_s3(s3_path) == expected
