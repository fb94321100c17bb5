"""The streamed observation keeps a tier's listing in the spill, not in memory: observing a tier over twenty
times the objects allocates no more Python memory at its peak, and a dataset's key is still found in it.

Measured with tracemalloc (it sees every Python allocation and none of SQLite's, whose page cache is capped
apart); the bucket makes its entries as it lists them, so the store itself holds nothing; no clock is read.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.model import Desired, Entry, ObjectRef, Observed, S3StoreSpec, TierSpec
from reconciler.observe.hashing import StreamingHasher
from reconciler.scale.observe import observe_spilled
from reconciler.scale.spill import Spill
from reconciler.stores.memory import MemoryStore

# What observing may grow by between 1,000 and 20,000 objects: the spill's insert batch (4,096 rows, about a
# megabyte) fits in it; a dict of the listing (a key and an Entry are well over a hundred bytes an object)
# crosses it several times over.
ALLOWANCE = 2 * 1024 * 1024


class GeneratedBucket(MemoryStore):
    """`n` objects under raw/, made one at a time as a listing reaches them."""

    def __init__(self, n: int) -> None:
        super().__init__("lake")
        self.n = n

    def list(self, prefix: str) -> Iterator[Entry]:
        for i in range(self.n):
            key = f"raw/f{i:08d}.jsonl"
            if key.startswith(prefix):
                yield Entry(key, 10, f"{i:032x}", 1, f"{i:032x}")


def _observed_peak(n: int, tmp: Path, inventory: ObjectRef | None = None) -> int:
    """`inventory`: where s3_manifest.json goes; given, the whole bucket is listed for it as well."""
    desired = Desired(
        stores={"lake": S3StoreSpec("lake", "bucket")},
        mappings=(),
        spec_digest="digest",
        tiers=(TierSpec("raw", "lake", "raw/"),),
        inventory=inventory,
    )
    stores = {"lake": GeneratedBucket(n)}
    with Spill(tmp / str(n)) as spill:
        gc.collect()
        tracemalloc.start()
        try:
            observed: Observed = observe_spilled(desired, stores, StreamingHasher(), spill)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # The view answers as the listing's dict would: the last key, an absent one, and every one in order.
        tier = observed.tiers["raw"]
        last = f"raw/f{n - 1:08d}.jsonl"
        assert tier.get(last) == Entry(last, 10, f"{n - 1:032x}", 1, f"{n - 1:032x}")
        assert tier.get("raw/absent") is None
        assert len(tier) == n
        assert next(iter(tier)) == "raw/f00000000.jsonl"
        if inventory is not None:
            bucket = observed.buckets["lake"]
            assert len(bucket) == n and bucket.get(last) == tier.get(last)
    return peak


@pytest.mark.slow
def test_observing_a_tier_of_twenty_times_the_objects_holds_no_more(tmp_path: Path) -> None:
    small, large = _observed_peak(1_000, tmp_path), _observed_peak(20_000, tmp_path)
    assert large - small < ALLOWANCE, (small, large)


@pytest.mark.slow
def test_observing_an_inventoried_bucket_of_twenty_times_the_objects_holds_no_more(tmp_path: Path) -> None:
    # The inventory lists the tiers' whole bucket: kept in memory, that listing alone crosses the allowance.
    ref = ObjectRef("lake", "s3_manifest.json")
    small, large = _observed_peak(1_000, tmp_path, ref), _observed_peak(20_000, tmp_path, ref)
    assert large - small < ALLOWANCE, (small, large)
