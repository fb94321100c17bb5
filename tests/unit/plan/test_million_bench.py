"""The "1M-object plan" benchmark row, run small: its child-process path and what it relies on.

Speed and memory are measured by `python -m bench.million`, never asserted here.
"""

from __future__ import annotations

import math
import random

from bench.million import S3_PREFIX, _Listing, _WarmCache, run_million
from reconciler.model import (
    Authority,
    Desired,
    Entry,
    LocalStoreSpec,
    MappingObservation,
    MappingSpec,
    Observed,
    S3StoreSpec,
    StoreSpec,
)
from reconciler.observe.observer import observe
from reconciler.plan.diff import _is_sorted
from reconciler.plan.planner import plan


def test_child_process_row_plans_the_changed_fraction() -> None:
    result = run_million(n=2_000, changed=0.01)
    assert result["objects"] == 2_000
    assert result["changed"] == 20
    assert result["actions"] == 20  # one update per changed object, nothing else
    assert result["findings"] == 0
    for key in ("seconds", "observe_seconds", "plan_seconds", "listing_seconds", "cpu_seconds"):
        assert result[key] >= 0, key
    assert math.isclose(result["seconds"], result["observe_seconds"] + result["plan_seconds"], abs_tol=0.01)
    assert result["peak_rss_mib"] >= result["baseline_rss_mib"] > 0
    assert result["peak_rss_bytes_per_object"] >= result["rss_bytes_per_object"] >= 0
    assert math.isclose(result["peak_rss_bytes_per_object"], result["peak_rss_mib"] * 2**20 / 2_000, rel_tol=0.01)


def _desired(authority: Authority = Authority.LOCAL, prune: bool = True) -> Desired:
    mapping = MappingSpec(
        name="raw",
        local_store="staging",
        local_path="raw",
        s3_store="pixel-data",
        s3_prefix=S3_PREFIX,
        include=("**/*.jsonl",),
        authority=authority,
        prune=prune,
    )
    stores: dict[str, StoreSpec] = {
        "staging": LocalStoreSpec("staging", "/nonexistent"),
        "pixel-data": S3StoreSpec("pixel-data", "b"),
    }
    return Desired(stores=stores, mappings=(mapping,))


def _observed(n: int, changed: frozenset[int]) -> Observed:
    stores = {
        "staging": _Listing("staging", n, changed, s3=False),
        "pixel-data": _Listing("pixel-data", n, changed, s3=True),
    }
    return observe(_desired(), stores, _WarmCache())  # type: ignore[arg-type]


def test_observation_shares_equal_strings_between_sides() -> None:
    observed = _observed(300, frozenset({7}))
    obs = observed.mappings["raw"]
    assert list(obs.local) == sorted(obs.local) and len(obs.local) == len(obs.remote) == 300
    for rel, local in obs.local.items():
        remote = obs.remote[rel]
        assert local.key is remote.key is rel
        assert remote.etag is remote.md5
        assert (local.md5 is remote.md5) == (rel != "cat7/shard0/file7.jsonl")


def test_sorted_merge_and_lookup_paths_plan_the_same() -> None:
    """Sorted listings are merged, others looked up: both orders must give the very same plan."""
    rng = random.Random(3)
    obs = _observed(400, frozenset(rng.sample(range(400), 20))).mappings["raw"]
    keys = sorted(obs.local)
    local = {k: e for k, e in obs.local.items() if k not in keys[::7]}  # some only in S3
    remote = {k: e for k, e in obs.remote.items() if k not in keys[3::11]}  # some only local
    local["zzz/last.jsonl"] = Entry("zzz/last.jsonl", 5, "0" * 32)  # a tail on one side only
    remote["aaa/first.jsonl"] = Entry("aaa/first.jsonl", 6, None, etag="x-2")  # unknown md5, S3 only
    local["cat1/unknown.jsonl"] = Entry("cat1/unknown.jsonl", 9, "1" * 32)
    remote["cat1/unknown.jsonl"] = Entry("cat1/unknown.jsonl", 9, None, etag="y-2")  # same size: rehash
    shuffled_keys = list(local)
    rng.shuffle(shuffled_keys)
    for authority in Authority:
        for prune in (True, False):
            desired = _desired(authority, prune)
            merged = MappingObservation(dict(sorted(local.items())), dict(sorted(remote.items())))
            looked_up = MappingObservation({k: local[k] for k in shuffled_keys}, dict(reversed(remote.items())))
            assert _is_sorted(merged.local) and _is_sorted(merged.remote)
            assert not _is_sorted(looked_up.local) and not _is_sorted(looked_up.remote)
            a = plan(desired, Observed(mappings={"raw": merged}))
            b = plan(desired, Observed(mappings={"raw": looked_up}))
            assert a == b, (authority, prune)
            assert len(a.actions) + len(a.findings) > 20
