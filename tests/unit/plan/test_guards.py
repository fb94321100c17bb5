"""Delete guards: ownership, protect, --max-delete, the 25% mass-delete rule."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler.model import (
    Action,
    ActionKind,
    Authority,
    Change,
    Desired,
    Entry,
    LocalStoreSpec,
    MappingObservation,
    MappingSpec,
    ObjectRef,
    Observed,
    Plan,
    Precondition,
    S3StoreSpec,
    StoreSpec,
)
from reconciler.observe import StreamingHasher, observe
from reconciler.plan import plan as make_plan
from reconciler.plan.guards import GuardLimits, check
from reconciler.stores.memory import MemoryStore

STORES: dict[str, StoreSpec] = {"disk": LocalStoreSpec("disk", "/x"), "s3": S3StoreSpec("s3", "bucket")}


def desired(*mappings: MappingSpec) -> Desired:
    return Desired(stores=STORES, mappings=mappings)


def raw(**kw: object) -> MappingSpec:
    return dataclasses.replace(MappingSpec("raw", "disk", "raw", "s3", "datasets/raw/", prune=True), **kw)  # type: ignore[arg-type]


def delete(key: str, mapping: str = "raw") -> Action:
    return Action(
        id=f"delete:s3:{key}",
        kind=ActionKind.DELETE,
        change=Change.DELETE,
        mapping=mapping,
        target=ObjectRef("s3", key),
        reason="pruned",
        precondition=Precondition(target_etag="e"),
    )


def observed(mapping: str, remote_count: int) -> Observed:
    remote = {f"k{i}": Entry(f"k{i}", 1, None) for i in range(remote_count)}
    return Observed(mappings={mapping: MappingObservation(local={}, remote=remote)})


def deletes(n: int) -> tuple[Action, ...]:
    return tuple(delete(f"datasets/raw/k{i}") for i in range(n))


def test_max_delete_refuses_one_over_the_limit_only() -> None:
    d, obs = desired(raw()), observed("raw", 1000)
    at_limit = check(d, obs, Plan(deletes(5), ()), GuardLimits(max_delete=5))
    assert at_limit.errors == ()
    over = check(d, obs, Plan(deletes(6), ()), GuardLimits(max_delete=5))
    assert len(over.errors) == 1
    assert "would delete 6 objects, more than --max-delete 5" in over.errors[0]
    assert not over.applyable


def test_default_max_delete_is_100() -> None:
    d, obs = desired(raw()), observed("raw", 10_000)
    assert check(d, obs, Plan(deletes(100), ()), GuardLimits()).errors == ()
    assert "--max-delete 100" in check(d, obs, Plan(deletes(101), ()), GuardLimits()).errors[0]


def test_more_than_a_quarter_of_a_prefix_is_refused_unless_allowed() -> None:
    d, obs = desired(raw()), observed("raw", 40)
    assert check(d, obs, Plan(deletes(10), ()), GuardLimits()).errors == ()  # exactly 25%
    refused = check(d, obs, Plan(deletes(11), ()), GuardLimits())
    assert len(refused.errors) == 1
    assert "would delete 11 of the 40 objects under s3:datasets/raw/ (28%" in refused.errors[0]
    assert "--allow-mass-delete" in refused.errors[0]
    assert check(d, obs, Plan(deletes(11), ()), GuardLimits(allow_mass_delete=True)).errors == ()


def test_a_few_deletes_in_a_tiny_prefix_are_routine() -> None:
    d, obs = desired(raw()), observed("raw", 4)
    assert check(d, obs, Plan(deletes(4), ()), GuardLimits()).errors == ()
    assert check(d, observed("raw", 5), Plan(deletes(5), ()), GuardLimits(mass_min_count=5)).errors != ()


def test_wrong_source_directory_accident_end_to_end() -> None:
    """An empty local directory under a pruned mapping plans 'delete everything': the guard refuses."""
    d = desired(raw())
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("raw/README", b"")  # a directory that is not the data: one stray file
    for i in range(30):
        s3.put(f"datasets/raw/shard-{i:03}.jsonl", b"x" * (i + 1))
    obs = observe(d, {"disk": disk, "s3": s3}, StreamingHasher())
    plan = make_plan(d, obs)
    assert sum(a.kind is ActionKind.DELETE for a in plan.actions) == 30
    guarded = check(d, obs, plan, GuardLimits())
    assert any("would delete 30 of the 30 objects" in e for e in guarded.errors)
    allowed = check(d, obs, plan, GuardLimits(allow_mass_delete=True))
    assert allowed.errors == () and allowed.actions == plan.actions
    assert allowed.object_counts == {"raw": 30}  # recorded for apply, which derives the guard again


def test_deletes_need_an_exclusively_owned_pruned_prefix() -> None:
    nested = MappingSpec("keep", "disk", "raw/keep", "s3", "datasets/raw/keep/", prune=False)
    d, obs = desired(raw(), nested), observed("raw", 100)
    plan = Plan((delete("datasets/raw/keep/a"), delete("datasets/raw/fine")), ())
    errors = check(d, obs, plan, GuardLimits()).errors
    assert len(errors) == 1
    assert "'raw': it does not own the prefix exclusively: also covered by 'keep'" in errors[0]
    assert "datasets/raw/keep/a" in errors[0]

    unpruned = check(desired(raw(prune=False)), obs, Plan((delete("datasets/raw/x"),), ()), GuardLimits())
    assert "it does not prune" in unpruned.errors[0]
    outside = check(d, obs, Plan((delete("elsewhere/x"),), ()), GuardLimits())
    assert "they are not under its prefixes" in outside.errors[0]


def test_pixel_bookkeeping_is_never_pruned_but_plan_scratch_keys_may_go() -> None:
    whole = MappingSpec("all", "disk", "", "s3", "", prune=True)
    d, obs = desired(whole), observed("all", 100)
    lock = check(d, obs, Plan((delete(".pixel/lock", "all"),), ()), GuardLimits())
    assert "are pixel's own" in lock.errors[0]
    park = Action(
        id="copy:s3:.pixel/tmp/x", kind=ActionKind.COPY, change=Change.CREATE, mapping="all",
        target=ObjectRef("s3", ".pixel/tmp/x"), source=ObjectRef("s3", "a"), reason="park",
    )
    assert check(d, obs, Plan((park, delete(".pixel/tmp/x", "all")), ()), GuardLimits()).errors == ()


def test_protected_mapping_errors_once_not_per_key() -> None:
    d = desired(raw(protect=True))
    first_pass = ("mapping 'raw' is protected (protect: true) but the plan would delete 3 object(s) under s3:x",)
    plan = Plan(deletes(3), (), errors=first_pass)
    assert check(d, observed("raw", 100), plan, GuardLimits()).errors == first_pass
    added_later = check(d, observed("raw", 100), Plan(deletes(3), ()), GuardLimits()).errors
    assert len(added_later) == 1 and "it is protected" in added_later[0]


def test_a_renamed_prefix_is_not_a_mass_delete() -> None:
    d, obs = desired(raw()), observed("raw", 20)
    moves = tuple(
        Action(
            id=f"move:s3:datasets/raw/new/k{i}", kind=ActionKind.MOVE, change=Change.CREATE, mapping="raw",
            target=ObjectRef("s3", f"datasets/raw/new/k{i}"), source=ObjectRef("s3", f"datasets/raw/k{i}"),
            reason="same content",
        )
        for i in range(20)
    )
    assert check(d, obs, Plan((*moves, *deletes(20)), ()), GuardLimits(max_delete=0)).errors == ()


@pytest.mark.parametrize("authority", [Authority.S3])
def test_pull_mappings_count_local_files(authority: Authority) -> None:
    d = desired(raw(authority=authority, prune_local=True))
    local = {f"k{i}": Entry(f"k{i}", 1, None) for i in range(10)}
    obs = Observed(mappings={"raw": MappingObservation(local=local, remote={})})
    local_deletes = tuple(
        dataclasses.replace(delete(f"raw/k{i}"), target=ObjectRef("disk", f"raw/k{i}")) for i in range(6)
    )
    errors = check(d, obs, Plan(local_deletes, ()), GuardLimits()).errors
    assert len(errors) == 1 and "6 of the 10 objects under disk:raw/" in errors[0]


def test_release_local_needs_a_verify_before_it() -> None:
    d, obs = desired(raw()), observed("raw", 0)
    verify = Action(
        id="verify:s3:datasets/raw/a", kind=ActionKind.VERIFY, change=Change.READ, mapping="raw",
        target=ObjectRef("s3", "datasets/raw/a"), reason="check",
    )
    release = Action(
        id="release-local:disk:raw/a", kind=ActionKind.RELEASE_LOCAL, change=Change.DELETE, mapping="raw",
        target=ObjectRef("disk", "raw/a"), reason="uploaded and verified",
    )
    assert check(d, obs, Plan((verify, release), ((verify.id, release.id),)), GuardLimits()).errors == ()
    unverified = check(d, obs, Plan((verify, release), ()), GuardLimits()).errors
    assert unverified == ("refusing 1 release-local action(s) not preceded by a verify of the S3 copy: disk:raw/a",)
