"""The later passes (datasets, record indexes, tier guards, generated files) run on the spill in memory that
does not grow with the objects: a streamed plan of twenty times the objects, in a world with tiers, a
dataset, a registry and an inventory, allocates no more Python memory at its peak; nor does the streamed
apply's check of that plan.

Measured with tracemalloc, which sees every Python allocation and none of SQLite's (its page cache is
capped apart: `spill.CACHE_KIB`); no clock is read.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from reconciler.model import (
    DatasetSpec,
    Desired,
    Entry,
    LocalStoreSpec,
    MappingObservation,
    MappingSpec,
    ObjectRef,
    Observed,
    S3StoreSpec,
    TierSpec,
)
from reconciler.plan.guards import GuardLimits
from reconciler.scale.apply import problems
from reconciler.scale.planner import stream_plan
from reconciler.scale.spill import Spill
from tests.unit.scale.trees import spilled

# What the plan may grow by between 1,000 and 20,000 objects: a few bytes an object would cross it, a plan
# read into memory (an action is several hundred bytes) by far.
ALLOWANCE = 512 * 1024
T = TypeVar("T")


def _world(n: int) -> tuple[Desired, Observed]:
    """`n` local files to upload under the raw tier; one of them the source of a dataset in the registry."""
    mapping = MappingSpec("raw", "disk", "src", "lake", "raw/", prune=True)
    dataset = DatasetSpec(
        "first", "processed", "c", "jsonl", "lake", "processed/c/first.jsonl", source=ObjectRef("lake", "raw/f0.jsonl")
    )
    desired = Desired(
        stores={"disk": LocalStoreSpec("disk", "/nowhere"), "lake": S3StoreSpec("lake", "bucket")},
        mappings=(mapping,),
        spec_digest="digest",
        tiers=(TierSpec("raw", "lake", "raw/"), TierSpec("processed", "lake", "processed/")),
        datasets=(dataset,),
        registry=ObjectRef("disk", "registry.json"),
        inventory=ObjectRef("disk", "inventory.json"),
    )
    local = {f"f{i}.jsonl": Entry(f"f{i}.jsonl", 10, f"{i:032x}", 1, f"10-{i}") for i in range(n)}
    observed = Observed(
        mappings={"raw": MappingObservation(local, {})}, tiers={"raw": {}, "processed": {}}, buckets={"lake": {}}
    )
    return desired, observed


def _traced(run: Callable[[], T]) -> tuple[T, int]:
    """What `run` returns, and the peak of the Python memory it allocated."""
    gc.collect()
    tracemalloc.start()
    try:
        out = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


def _peaks(n: int, tmp: Path) -> tuple[int, int]:
    """(peak of the streamed plan, peak of the streamed apply's check of it) for `n` objects."""
    desired, observed = _world(n)
    with Spill(tmp / str(n)) as spill:
        sides = spilled(observed, spill)
        del observed
        streamed, planned = _traced(lambda: stream_plan(desired, sides, spill, GuardLimits()))
        # The passes did run: an upload per file, the dataset copied after the upload of its source, its record
        # index, the registry, and the inventory waiting for every upload.
        kinds = dict(spill.db.execute("SELECT kind, count(*) FROM actions GROUP BY kind").fetchall())
        assert kinds == {"upload": n, "copy": 1, "write-manifest": 3}, kinds
        (waits,) = spill.db.execute(
            "SELECT count(*) FROM edges WHERE after = ?", (b"write-manifest:disk:inventory.json",)
        ).fetchone()
        assert waits == n + 1
        assert streamed.applyable
        found, checked = _traced(lambda: problems(desired, streamed, GuardLimits()))
        assert found == []
    return planned, checked


@pytest.mark.slow
def test_the_later_passes_hold_no_more_for_twenty_times_the_objects(tmp_path: Path) -> None:
    small, large = _peaks(1_000, tmp_path), _peaks(20_000, tmp_path)
    assert large[0] - small[0] < ALLOWANCE, ("plan", small, large)
    assert large[1] - small[1] < ALLOWANCE, ("the apply's check", small, large)
