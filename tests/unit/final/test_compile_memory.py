"""The compile action against an in-memory bucket: byte-identical rebuilds, hash splits, clear record errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.apply.final import FinalCompiler, cumulative, split_of
from reconciler.model import ActionKind, Desired
from reconciler.observe import StreamingHasher, observe
from reconciler.plan import plan
from reconciler.stores.base import PermanentStoreError, Store
from reconciler.stores.local import LocalStore
from reconciler.stores.memory import MemoryStore
from tests.unit.final.world import desired


def _world(tmp_path: Path, rows: dict[str, list[dict[str, object]]]) -> tuple[Desired, dict[str, Store]]:
    d = desired(tmp_path)
    lake = MemoryStore("lake")
    for name, records in rows.items():
        lake.put(f"datasets/processed/c/{name}.jsonl", b"".join(json.dumps(r).encode() + b"\n" for r in records))
    disk = LocalStore("disk", tmp_path / "specs" / "data")
    return d, {"lake": lake, "disk": disk}


def _compile(d: Desired, stores: dict[str, Store]) -> FinalCompiler:
    p = plan(d, observe(d, stores, StreamingHasher()))
    [action] = [a for a in p.actions if a.kind is ActionKind.COMPILE]
    compiler = FinalCompiler(d, stores)
    compiler(action)
    return compiler


def test_two_buckets_get_byte_identical_builds(tmp_path: Path) -> None:
    rows: dict[str, list[dict[str, object]]] = {
        "alpha": [{"id": i, "t": "a" * (i % 7)} for i in range(250)],
        "beta": [{"id": i} for i in range(200, 420)],
    }
    d, first = _world(tmp_path, rows)
    _, second = _world(tmp_path, rows)
    stats = _compile(d, first).last
    _compile(d, second)
    a, b = first["lake"], second["lake"]
    assert isinstance(a, MemoryStore) and isinstance(b, MemoryStore)
    shards = [k for k in a if k.startswith("final_dataset/") and not k.endswith("manifest.json")]
    assert shards == [k for k in b if k.startswith("final_dataset/") and not k.endswith("manifest.json")]
    assert all(a.get(k) == b.get(k) for k in shards)
    assert stats is not None and (stats.read, stats.duplicates) == (470, 50)  # ids 200..249 twice, dedupe by id
    manifest = json.loads(a.get("final_dataset/manifest.json"))
    assert next(s["records"] for s in manifest["shards"] if s["split"] == "train") == 100  # shard: records: 100


def test_a_record_without_the_split_key_names_its_source_and_line(tmp_path: Path) -> None:
    d, stores = _world(tmp_path, {"alpha": [{"id": 1}, {"name": "no id"}], "beta": [{"id": 2}]})
    with pytest.raises(PermanentStoreError, match=r"lake:datasets/processed/c/alpha.jsonl: record 2: .*'id'"):
        _compile(d, stores)
    lake = stores["lake"]
    assert isinstance(lake, MemoryStore) and "final_dataset/manifest.json" not in lake


def test_split_points_follow_the_cumulative_ratios() -> None:
    bounds = cumulative((("train", 0.5), ("validation", 0.25), ("test", 0.25)))
    assert [split_of(bytes([b]) + bytes(7), bounds) for b in (0, 127, 128, 191, 192, 255)] == [
        "train", "train", "validation", "validation", "test", "test"]
