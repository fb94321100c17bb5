"""The training-data world (actors, datasets, registry, inventory) planned streamed: the observation spilled
by the streaming observer, the later passes on the spill, the same plan as `plan()`."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from reconciler.model import Desired, LocalStoreSpec, MappingSpec, S3StoreSpec
from reconciler.observe import StreamingHasher, observe
from reconciler.plan import plan
from reconciler.plan.guards import GuardLimits, check
from reconciler.scale.observe import observe_spilled
from reconciler.scale.planner import stream_plan
from reconciler.scale.spill import Spill
from reconciler.stores.memory import MemoryStore
from tests.unit.manifests.world import build


def test_the_training_data_world_streams_to_the_same_plan(tmp_path: Path) -> None:
    world = build(tmp_path)
    desired, observed = world.observe()
    limits = GuardLimits(max_delete=0)
    expected = check(desired, observed, plan(desired, observed), limits)
    assert {a.kind.value for a in expected.actions} >= {"upload", "write-manifest"}
    with Spill(tmp_path / "spill") as spill:
        spilled = observe_spilled(desired, world.stores, StreamingHasher(), spill)
        assert spilled.generated == observed.generated and spilled.tiers == observed.tiers
        for name, obs in observed.mappings.items():
            assert dict(spilled.mappings[name].local.items()) == dict(obs.local)
            assert dict(spilled.mappings[name].remote.items()) == dict(obs.remote)
        assert stream_plan(desired, spilled, spill, limits).to_plan() == expected


class _Unreadable(MemoryStore):
    """A disk where one file cannot be read (a permission error, a disk error)."""

    def open(self, key: str, *, if_match: str | None = None) -> AbstractContextManager[BinaryIO]:
        if key.endswith("locked.jsonl"):
            raise PermissionError(13, "Permission denied")
        return super().open(key, if_match=if_match)


def test_an_unreadable_file_is_a_gap_in_both_observations(tmp_path: Path) -> None:
    desired = Desired(
        stores={"disk": LocalStoreSpec("disk", "/nowhere"), "s3": S3StoreSpec("s3", "bucket")},
        mappings=(MappingSpec("m", "disk", "src", "s3", "pre/", prune=True),),
    )
    disk, s3 = _Unreadable("disk"), MemoryStore("s3")
    for name in ("a.jsonl", "locked.jsonl", "z.jsonl"):
        disk.put(f"src/{name}", name.encode(), foreign=True)  # listed without an md5: it must be read
        s3.put(f"pre/{name}", b"old " + name.encode())
    s3.put("pre/gone.jsonl", b"gone")
    observed = observe(desired, {"disk": disk, "s3": s3}, StreamingHasher())
    expected = check(desired, observed, plan(desired, observed), GuardLimits())
    assert any("locked.jsonl" in f.key for f in expected.findings)  # a finding, neither an upload nor a delete
    with Spill(tmp_path / "spill") as spill:
        spilled = observe_spilled(desired, {"disk": disk, "s3": s3}, StreamingHasher(), spill)
        assert spilled.problems == observed.problems
        assert spilled.mappings["m"].local_gaps == observed.mappings["m"].local_gaps
        assert stream_plan(desired, spilled, spill).to_plan() == expected
