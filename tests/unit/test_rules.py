"""Every consumer of pair state answers from `rules.classify`: the plan, the actor manifest and `pixel status`."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.manifests.actors import actor_state, render_actor_manifest
from reconciler.model import (
    ActionKind,
    ActorLayout,
    ActorSpec,
    Authority,
    Desired,
    Entry,
    FindingKind,
    LocalStoreSpec,
    MappingObservation,
    MappingSpec,
    ObjectRef,
    Observed,
    S3StoreSpec,
)
from reconciler.plan.diff import plan_mappings
from reconciler.plan.saved_checks import _mapping_problem
from reconciler.plan.status import mapping_counts
from reconciler.rules import STATUSES, ManifestStatus, PairState, classify, manifest_status

REL = "actor_0.jpg"
S3 = S3StoreSpec("bucket", "pixel-data")
LAYOUT = ActorLayout("disk", "actors", "bucket", "actors/", "disk", "manifests")
ACTOR = ActorSpec("1", "actor", "actor", ObjectRef("disk", "manifests/1_manifest.json"))


def spec(authority: Authority, **flags: Any) -> MappingSpec:
    # Any: the flags are prune/prune_local/release_local/protect, all bool, which mypy cannot see through **.
    return MappingSpec("actor", "disk", "actors/actor", "bucket", "actors/actor/", authority=authority, **flags)


def desired(mapping: MappingSpec) -> Desired:
    return Desired(stores={"disk": LocalStoreSpec("disk", "/tmp/x"), "bucket": S3}, mappings=(mapping,))


def sides(local: Entry | None, remote: Entry | None) -> tuple[dict[str, Entry], dict[str, Entry]]:
    return ({REL: local} if local else {}), ({REL: remote} if remote else {})


def plan_says(mapping: MappingSpec, local: Entry | None, remote: Entry | None) -> set[str]:
    here, there = sides(local, remote)
    world = desired(mapping)
    p = plan_mappings(world, Observed({mapping.name: MappingObservation(here, there)}))
    for action in p.actions:
        # A saved plan holding exactly what the planner made passes the checks (they consult the same
        # table), but for what the planner itself refuses (a delete under protect: true).
        assert _mapping_problem(world, mapping, action) is None or p.errors, action
    return {a.kind.value for a in p.actions} | {f.kind.value for f in p.findings}


def manifest_says(mapping: MappingSpec, local: Entry | None, remote: Entry | None) -> str:
    state = actor_state(LAYOUT, ACTOR, mapping, S3, *sides(local, remote))
    (entry,) = json.loads(render_actor_manifest(state, ACTOR, None, None))["training_data"]
    return str(entry["status"])


def status_says(mapping: MappingSpec, local: Entry | None, remote: Entry | None) -> str:
    counts = mapping_counts(MappingObservation(*sides(local, remote)), mapping)
    (status,) = [s for s in STATUSES if counts[s]["count"]]
    assert sum(counts[s]["count"] for s in STATUSES) == 1
    return status


def test_same_size_with_an_unknown_md5_is_not_reported_synced_while_the_plan_rehashes() -> None:
    """The bug: the manifest said "synced" for a multipart object of the same size the plan still rehashes."""
    mapping = spec(Authority.LOCAL)
    local = Entry(REL, 10, "a" * 32, 1, "10-1")
    remote = Entry(REL, 10, None, None, "0123456789abcdef0123456789abcdef-2")
    assert classify(local, remote) is PairState.UNKNOWN
    assert plan_says(mapping, local, remote) == {ActionKind.REHASH.value}
    assert manifest_says(mapping, local, remote) == ManifestStatus.OUT_OF_SYNC
    assert status_says(mapping, local, remote) == ManifestStatus.OUT_OF_SYNC


def test_report_only_unknown_md5_is_a_conflict_in_the_plan_and_the_manifest() -> None:
    mapping = spec(Authority.NONE)
    local = Entry(REL, 10, "a" * 32, 1, "10-1")
    remote = Entry(REL, 10, None, None, "0123456789abcdef0123456789abcdef-2")
    assert plan_says(mapping, local, remote) == {FindingKind.CONFLICT.value}
    state = actor_state(LAYOUT, ACTOR, mapping, S3, *sides(local, remote))
    assert state.conflicts == (REL,)


MD5S = st.sampled_from([None, "a" * 32, "b" * 32])
SIZES = st.sampled_from([1, 2])
LOCALS = st.none() | st.builds(lambda size, md5: Entry(REL, size, md5, 1, f"{size}-1"), SIZES, MD5S)
REMOTES = st.none() | st.builds(lambda size, md5: Entry(REL, size, md5, None, md5 or "c" * 32 + "-2"), SIZES, MD5S)


def expected_plan(mapping: MappingSpec, local: Entry | None, remote: Entry | None) -> set[str]:
    """What the README promises, restated from the entries alone (not from the rules table)."""
    if local is not None and remote is not None and local.md5 is not None and local.md5 == remote.md5:
        return set()
    if mapping.authority is Authority.NONE:
        return {FindingKind.CONFLICT.value}
    push = mapping.authority is Authority.LOCAL
    src, dst = (local, remote) if push else (remote, local)
    if src is not None and dst is None:
        return {(ActionKind.UPLOAD if push else ActionKind.DOWNLOAD).value}
    if src is not None and dst is not None:
        if src.size == dst.size and (src.md5 is None or dst.md5 is None):
            return {ActionKind.REHASH.value}
        return {(ActionKind.UPLOAD if push else ActionKind.DOWNLOAD).value}
    assert dst is not None
    if not push:
        return {(ActionKind.DELETE if mapping.prune_local else FindingKind.UNMANAGED).value}
    out = set()
    if (mapping.release_local or not mapping.prune) and dst.md5 is None:
        out.add(ActionKind.REHASH.value)
    if not mapping.release_local:
        out.add((ActionKind.DELETE if mapping.prune else FindingKind.UNMANAGED).value)
    return out


@settings(max_examples=300, deadline=None)
@given(
    LOCALS,
    REMOTES,
    st.sampled_from(list(Authority)),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_plan_manifest_and_status_agree_for_any_pair(
    local: Entry | None,
    remote: Entry | None,
    authority: Authority,
    prune: bool,
    prune_local: bool,
    release_local: bool,
    protect: bool,
) -> None:
    if local is None and remote is None:
        return
    mapping = spec(authority, prune=prune, prune_local=prune_local, release_local=release_local, protect=protect)
    planned = plan_says(mapping, local, remote)
    status = manifest_says(mapping, local, remote)
    assert status == status_says(mapping, local, remote) == manifest_status(local, remote)
    assert planned == expected_plan(mapping, local, remote)
    # The manifest's word and the plan's: synced exactly when the plan has nothing to do with the key,
    # but for the S3 copy a push keeps by design when its local file was released.
    released = status == ManifestStatus.S3_ONLY and authority is Authority.LOCAL and release_local
    if status == ManifestStatus.SYNCED:
        assert not planned
    elif not released:
        assert planned
    if status == ManifestStatus.OUT_OF_SYNC:
        directed = {ActionKind.UPLOAD.value, ActionKind.DOWNLOAD.value, ActionKind.REHASH.value}
        assert planned <= directed | {FindingKind.CONFLICT.value} and len(planned) == 1


def test_mapping_keys_round_trip_through_the_model() -> None:
    pushed = spec(Authority.LOCAL)
    assert pushed.local_key(REL) == "actors/actor/actor_0.jpg" and pushed.remote_key(REL) == "actors/actor/actor_0.jpg"
    assert pushed.rel_of_remote(pushed.remote_key(REL)) == REL and pushed.rel_of_local(pushed.local_key(REL)) == REL
    assert pushed.rel_of_remote("actors/actor/") is None and pushed.rel_of_remote("elsewhere/x") is None
    root = MappingSpec("root", "disk", "", "bucket", "")
    assert root.local_key(REL) == REL and root.local_base == "" and root.rel_of_local(REL) == REL
