"""The final dataset on SeaweedFS: compiled, published, current; rebuilt only with a reason, safely."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from reconciler.cli import main
from reconciler.commands.apply import apply
from reconciler.loader.final import split_shards
from reconciler.loader.formats import RecordFormat, iter_records
from reconciler.model import ActionKind, Entry
from reconciler.spec import load_schema
from reconciler.stores.base import PermanentStoreError, Store
from tests.integration.final_world import COMPILED, MANIFEST, FinalWorld, compile_action, jsonl, records, split_ids

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path, bucket: str, s3_client: Any, seaweed: Any, aws_env: dict[str, str]) -> Iterator[FinalWorld]:
    w = FinalWorld(tmp_path / "disk", tmp_path / "specs", bucket, seaweed.endpoint, s3_client)
    w.root.mkdir()
    w.put_source("a", jsonl(records("a", 150)))
    # b repeats 20 of a's ids (dedupe by split_key) and adds 80 of its own.
    w.put_source("b", jsonl(records("b", 20, start=130) + records("b", 80, start=1000)))
    w.put_source("c", jsonl(records("c", 60, start=5000)))
    w.write_specs(["a", "b"])
    yield w


def test_publish_is_current_after_apply_with_the_seed_layout(world: FinalWorld) -> None:
    _, _, plan = world.plan()
    action = compile_action(plan)
    assert action.reason.startswith("not published yet")
    assert apply(world.specs, auto_approve=True, parallelism=4) == 0

    manifest = world.manifest()
    keys = world.listed()
    assert MANIFEST in keys and COMPILED in keys
    assert manifest["counts"] == {"read": 250, "duplicates": 20, "written": manifest["counts"]["written"]}
    assert sum(manifest["counts"]["written"].values()) == 230
    for shard in manifest["shards"]:
        assert shard["key"] in keys
        assert shard["key"].startswith(f"final_dataset/{shard['split']}/shard-")
        assert shard["s3_url"] == f"s3://{world.bucket}/{shard['key']}"
        assert hashlib.md5(world.get(shard["key"])).hexdigest() == shard["md5"]
    assert {s["name"]: s["md5"] for s in manifest["sources"]} == {
        n: hashlib.md5(world.get(f"datasets/processed/c/{n}.jsonl")).hexdigest() for n in ("a", "b")
    }
    for split, totals in manifest["splits"].items():
        mine = [s for s in manifest["shards"] if s["split"] == split]
        assert totals == {"shards": len(mine), "records": sum(s["records"] for s in mine),
                          "bytes": sum(s["size"] for s in mine)}
    export = world.get(COMPILED)
    assert hashlib.md5(export).hexdigest() == manifest["compiled"]["md5"]
    assert len(export.splitlines()) == 230
    # The inventory summarises it, in its schema.
    inventory = json.loads((world.root / "inventory" / "s3_manifest.json").read_text())
    Draft202012Validator(load_schema("inventory.schema.json")).validate(inventory)
    assert inventory["final_dataset"]["splits"] == manifest["splits"]
    assert inventory["final_dataset"]["build"] == manifest["build"]
    # The local copy is kept, the staging directory holds nothing.
    assert (world.root / "kept" / "manifest.json").read_bytes() == world.get(MANIFEST)
    assert list((world.root / "work" / "final").iterdir()) == []

    _, _, again = world.plan()
    assert again.actions == ()

    # pixel status: the published dataset, its splits, and that it is current.
    shown = CliRunner().invoke(main, ["status", "--specs", str(world.specs), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    final = json.loads(shown.stdout)["final_dataset"]
    assert final["current"] is True and final["rebuild_reason"] is None
    assert final["published"]["records"] == 230 and final["published"]["shards"] == len(manifest["shards"])
    assert final["published"]["splits"] == manifest["splits"]
    text = CliRunner().invoke(main, ["status", "--specs", str(world.specs)]).stdout
    assert f"Final dataset: current; build {manifest['build'][:12]}" in text and "SPLIT" in text


def test_no_record_in_two_splits_and_adding_a_source_moves_none(world: FinalWorld) -> None:
    world.compile()
    before = split_ids(world, world.manifest())
    flat = [i for ids in before.values() for i in ids]
    assert len(flat) == len(set(flat)) == 230
    where = {i: split for split, ids in before.items() for i in ids}

    world.write_specs(["a", "b", "c"])
    _, _, plan = world.plan()
    assert "c added" in compile_action(plan).reason
    world.compile()
    after = split_ids(world, world.manifest())
    moved = {i for split, ids in after.items() for i in ids if i in where and where[i] != split}
    assert moved == set()
    assert sum(len(ids) for ids in after.values()) == 290


def test_two_compiles_are_byte_identical_and_unchanged_shards_are_not_uploaded_again(world: FinalWorld) -> None:
    first, _ = world.compile()
    manifest = world.manifest()
    bodies = {s["key"]: world.get(s["key"]) for s in manifest["shards"]}
    export = world.get(COMPILED)
    assert first.last is not None and first.last.uploaded == len(bodies) + 1
    world.client.delete_object(Bucket=world.bucket, Key=MANIFEST)  # forces a rebuild of identical inputs

    second, _ = world.compile()
    assert second.last is not None and (second.last.uploaded, second.last.reused) == (0, len(bodies) + 1)
    again = world.manifest()
    assert {s["key"]: world.get(s["key"]) for s in again["shards"]} == bodies
    assert world.get(COMPILED) == export
    assert again["shards"] == manifest["shards"]


def test_a_changed_source_rebuilds_with_its_reason_and_reuploads_only_changed_shards(world: FinalWorld) -> None:
    assert apply(world.specs, auto_approve=True, parallelism=4) == 0
    old = world.manifest()
    old_md5 = next(s["md5"] for s in old["sources"] if s["name"] == "b")
    # b's last 10 records change: only shards holding them (and those after them) differ.
    world.put_source("b", jsonl(records("b", 20, start=130) + records("b", 70, start=1000)
                                + records("b", 10, start=1070, text="edited")))
    new_md5 = hashlib.md5(world.get("datasets/processed/c/b.jsonl")).hexdigest()
    _, _, plan = world.plan()
    action = compile_action(plan)
    assert f"b changed: md5 {old_md5[:8]}… → {new_md5[:8]}…" in action.reason
    deletes = [a for a in plan.actions if a.kind is ActionKind.DELETE]
    assert {a.target.key for a in deletes} == {s["key"] for s in old["shards"]}
    assert all((action.id, d.id) in plan.edges for d in deletes)

    assert apply(world.specs, auto_approve=True, parallelism=4) == 0
    new = world.manifest()
    kept = {s["key"] for s in old["shards"]} & {s["key"] for s in new["shards"]}
    assert kept, "shards before the edit are the same bytes at the same keys"
    # Exactly the new manifest's shards remain: the old build's others are gone, the reused ones kept.
    assert set(world.listed()) == {s["key"] for s in new["shards"]} | {MANIFEST, COMPILED}
    _, _, after = world.plan()
    assert after.actions == ()


def test_splits_changed_is_the_reason(world: FinalWorld) -> None:
    world.compile()
    world.write_specs(["a", "b"], splits="{train: 0.5, validation: 0.25, test: 0.25}")
    _, _, plan = world.plan()
    assert compile_action(plan).reason.startswith("splits changed: compiles 2 source(s)")


class _Failing:
    """A store whose writes (or whose HEAD after a write) fail for keys `bad` selects."""

    def __init__(self, inner: Store, bad: Any, *, lie: bool = False) -> None:
        self.inner, self.bad, self.lie = inner, bad, lie
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(self, key: str, source: Any, **kwargs: Any) -> Entry:
        if self.bad(key) and not self.lie:
            raise PermanentStoreError(f"refused {key}", code="AccessDenied", key=key)
        return self.inner.write(key, source, **kwargs)

    def stat(self, key: str) -> Entry | None:
        found = self.inner.stat(key)
        if self.lie and found is not None and self.bad(key):
            return Entry(found.key, found.size, "0" * 32, found.mtime_ns, found.etag)
        return found

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        return self.inner.open(key)


def _wrap(bad: Any, *, lie: bool = False) -> Any:
    def hook(stores: Mapping[str, Store]) -> dict[str, Store]:
        return {n: (_Failing(s, bad, lie=lie) if n == "s3" else s) for n, s in stores.items()}  # type: ignore[misc]

    return hook


@pytest.mark.parametrize("lie", [False, True], ids=["upload-fails", "verify-fails"])
def test_local_files_are_released_only_after_a_verified_upload(world: FinalWorld, lie: bool) -> None:
    workdir = world.root / "work" / "final"
    with pytest.raises(PermanentStoreError):
        world.compile(_wrap(lambda key: key.startswith("final_dataset/validation/"), lie=lie))
    left = sorted(p.name for p in workdir.iterdir())
    assert left and all(n.startswith(("validation-", "compiled")) for n in left), left
    assert MANIFEST not in world.listed()
    # The next compile starts from a clean workdir and publishes everything.
    world.compile()
    assert list(workdir.iterdir()) == []
    assert MANIFEST in world.listed()


def test_reading_the_published_shards_back_in_manifest_order(world: FinalWorld) -> None:
    world.compile()
    body = world.get(MANIFEST)
    manifest = json.loads(body)
    read: list[str] = []
    for ref in split_shards(body, "train", store="s3"):
        data = world.get(ref.key)
        assert hashlib.md5(data).hexdigest() == ref.md5
        import io

        read += [r["id"] for r in iter_records(io.BytesIO(data), key=ref.key, fmt=RecordFormat.JSONL)]
    expected = [json.loads(line)["id"] for s in manifest["shards"] if s["split"] == "train"
                for line in world.get(s["key"]).splitlines()]
    assert read == expected and len(read) == manifest["splits"]["train"]["records"]


def test_load_dataset_streams_a_published_split_in_manifest_order_with_sharding_and_resume(
    world: FinalWorld, tmp_path: Path
) -> None:
    from reconciler.loader import load_dataset

    world.compile()
    expected = split_ids(world, world.manifest())
    cache = tmp_path / "cache"
    train = load_dataset("final_dataset", world.specs, split="train", cache_dir=cache)
    assert [r["id"] for r in train] == expected["train"]
    # Every split in turn without split=; two ranks share the split exactly once between them.
    everything = [r["id"] for r in load_dataset("final_dataset", world.specs, cache_dir=cache)]
    assert sorted(everything) == sorted(i for ids in expected.values() for i in ids)
    halves = [
        [r["id"] for r in load_dataset("final_dataset", world.specs, split="train", rank=k, world_size=2,
                                       cache_dir=cache)]
        for k in (0, 1)
    ]
    assert sorted(halves[0] + halves[1]) == sorted(expected["train"]) and not set(halves[0]) & set(halves[1])
    # A resume from a state taken mid-split continues exactly where it stopped.
    first = load_dataset("final_dataset", world.specs, split="train", cache_dir=cache)
    it = iter(first)
    before = [next(it)["id"] for _ in range(7)]
    state = first.state_dict()
    again = load_dataset("final_dataset", world.specs, split="train", cache_dir=cache)
    again.load_state_dict(state)
    assert before + [r["id"] for r in again] == expected["train"]
    with pytest.raises(Exception, match="no split 'nope'"):
        list(load_dataset("final_dataset", world.specs, split="nope", cache_dir=cache))
