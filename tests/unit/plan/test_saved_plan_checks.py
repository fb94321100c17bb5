"""A saved plan is checked against the current specs before apply: where each action lies, its preconditions,
the delete guards. Every plan the planner itself makes passes; each kind of tampering is refused by name."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.model import (
    TEMP_PREFIX,
    Action,
    ActionKind,
    Authority,
    Change,
    Desired,
    LocalStoreSpec,
    MappingSpec,
    ObjectRef,
    Plan,
    Precondition,
    S3StoreSpec,
    StoreSpec,
)
from reconciler.observe import StreamingHasher, observe
from reconciler.plan import guards, saved_checks, serialize
from reconciler.plan import plan as make_plan
from reconciler.plan.guards import GuardLimits, check
from reconciler.plan.saved_checks import UnsafeSavedPlan, problems
from reconciler.plan.serialize import PlanFileError
from reconciler.schemas import load_schema
from reconciler.stores.memory import MemoryStore
from tests.unit.manifests.world import World, build

STORES: dict[str, StoreSpec] = {"disk": LocalStoreSpec("disk", "/x"), "s3": S3StoreSpec("s3", "bucket")}


def raw(**kw: Any) -> MappingSpec:
    return dataclasses.replace(MappingSpec("raw", "disk", "raw", "s3", "datasets/raw/", prune=True), **kw)


def desired(*mappings: MappingSpec) -> Desired:
    return Desired(stores=STORES, mappings=mappings or (raw(),))


def planned(d: Desired, disk: MemoryStore, s3: MemoryStore, limits: GuardLimits | None = None) -> Plan:
    """The real planner and guards, as `pixel plan` runs them; the plan must be applyable."""
    observed = observe(d, {"disk": disk, "s3": s3}, StreamingHasher())
    result = check(d, observed, make_plan(d, observed), limits or GuardLimits(allow_mass_delete=True))
    assert result.applyable, result.errors
    return result


def through_the_file(p: Plan, limits: GuardLimits | None = None) -> serialize.SavedPlan:
    """What `pixel apply FILE` reads back from what `pixel plan -out FILE` wrote (with `planned`'s limits)."""
    limits = limits or GuardLimits(allow_mass_delete=True)
    return serialize.loads_saved(serialize.dumps(p, limits=limits), source="plan.json")


def assert_applyable(d: Desired, p: Plan) -> None:
    saved = through_the_file(p)
    assert saved.plan == p
    assert problems(d, saved.plan, saved.limits) == []
    saved_checks.check(d, saved.plan, saved.limits, plan_file="plan.json")  # does not raise


def pruned_world() -> tuple[Desired, Plan]:
    """raw: one new file, one changed, one stale object to prune."""
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("raw/new.jsonl", b"new\n")
    disk.put("raw/changed.jsonl", b"v2\n")
    s3.put("datasets/raw/changed.jsonl", b"v1\n")
    s3.put("datasets/raw/stale.jsonl", b"stale\n")
    s3.put("outside/keep.json", b"not pixel's")
    d = desired()
    return d, planned(d, disk, s3)


def action(p: Plan, kind: ActionKind) -> Action:
    return next(a for a in p.actions if a.kind is kind)


def replaced(p: Plan, old: Action, new: Action) -> Plan:
    ids = {old.id: new.id}
    return dataclasses.replace(
        p,
        actions=tuple(new if a is old else a for a in p.actions),
        edges=tuple((ids.get(a, a), ids.get(b, b)) for a, b in p.edges),
    )


def retarget(a: Action, key: str, store: str | None = None, **pre: Any) -> Action:
    target = ObjectRef(store or a.target.store, key)
    return dataclasses.replace(
        a,
        id=f"{a.kind.value}:{target}",
        target=target,
        precondition=dataclasses.replace(a.precondition, **pre),
    )


# --- every plan pixel makes passes ------------------------------------------------------------------------


def test_a_plan_with_uploads_overwrites_and_prunes_passes() -> None:
    d, p = pruned_world()
    assert {a.kind for a in p.actions} == {ActionKind.UPLOAD, ActionKind.DELETE}
    assert_applyable(d, p)


def test_moves_swaps_through_temp_keys_and_rehash_pass() -> None:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    for key, data in {"a": b"BBBB", "b": b"AAAA", "renamed": b"CCCC", "big": b"multipart"}.items():
        disk.put(f"raw/{key}", data)
    for key, data in {"a": b"AAAA", "b": b"BBBB", "old-name": b"CCCC"}.items():
        s3.put(f"datasets/raw/{key}", data)
    s3.put("datasets/raw/big", b"multipart", foreign=True)  # md5 unknown: rehash
    d = desired()
    p = planned(d, disk, s3)
    kinds = sorted(a.kind.value for a in p.actions)
    assert kinds == ["copy", "delete", "move", "move", "move", "rehash"], kinds
    assert action(p, ActionKind.COPY).target.key.startswith(TEMP_PREFIX)
    assert any(a.source and a.source.key.startswith(TEMP_PREFIX) for a in p.actions if a.kind is ActionKind.MOVE)
    assert_applyable(d, p)


def test_release_local_and_its_verify_pass() -> None:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("raw/shard-0", b"zero")
    disk.put("raw/shard-1", b"one")
    s3.put("datasets/raw/shard-1", b"one")
    d = desired(raw(release_local=True))
    p = planned(d, disk, s3)
    assert sorted(a.kind.value for a in p.actions) == [
        "release-local", "release-local", "upload", "verify", "verify"
    ]
    assert_applyable(d, p)


def test_pull_downloads_and_local_prunes_pass() -> None:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("raw/stale", b"gone from s3")
    disk.put("raw/changed", b"old")
    s3.put("datasets/raw/changed", b"new")
    s3.put("datasets/raw/new", b"fresh")
    d = desired(raw(authority=Authority.S3, prune_local=True))
    p = planned(d, disk, s3)
    assert sorted((a.kind.value, a.target.store) for a in p.actions) == [
        ("delete", "disk"), ("download", "disk"), ("download", "disk")
    ]
    assert_applyable(d, p)


def test_datasets_registry_inventory_and_actor_manifests_pass_before_and_after_an_apply(tmp_path: Path) -> None:
    w: World = build(tmp_path)
    d, observed = w.observe()
    first = check(d, observed, make_plan(d, observed), GuardLimits())
    assert first.applyable, first.errors
    kinds = {(a.mapping, a.kind.value) for a in first.actions}
    assert {("datasets", "copy"), ("datasets", "move"), ("datasets", "verify"), ("datasets", "delete"),
            ("datasets", "upload"), ("registry", "write-manifest"), ("inventory", "write-manifest")} <= kinds
    assert ("actors/0007_asian_25_female", "upload") in kinds  # a discovered actor's mapping
    assert_applyable(d, first)

    _, result, _ = w.apply()
    assert result.ok
    w.ws.put("ai/data/dataset_registry.json", b"{}")  # edited by hand: rewritten, If-Match the edited version
    w.ws.put("data/actors/0007_asian_25_female/training_data/0007_asian_25_female_0.jpg", b"\xff\xd8 new")
    d, observed = w.observe()
    second = check(d, observed, make_plan(d, observed), GuardLimits())
    assert {(a.kind, a.change) for a in second.actions} >= {
        (ActionKind.WRITE_MANIFEST, Change.UPDATE), (ActionKind.UPLOAD, Change.UPDATE)
    }
    assert_applyable(d, second)


KEYS = st.sampled_from(["a", "b", "c/d", "c/e", "x.jsonl", "z"])
CONTENT = st.sampled_from([b"", b"1", b"22", b"abc", b"xyz"])


@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    local=st.dictionaries(KEYS, CONTENT, max_size=6),
    remote=st.dictionaries(KEYS, st.tuples(CONTENT, st.booleans()), max_size=6),
    authority=st.sampled_from([Authority.LOCAL, Authority.S3]),
    prune=st.booleans(),
    release=st.booleans(),
)
def test_every_applyable_plan_the_planner_makes_passes(
    local: dict[str, bytes], remote: dict[str, tuple[bytes, bool]], authority: Authority, prune: bool, release: bool
) -> None:
    d = desired(
        raw(
            authority=authority,
            prune=prune,
            prune_local=prune and authority is Authority.S3,
            release_local=release and authority is Authority.LOCAL,
        ),
        MappingSpec("other", "disk", "elsewhere", "s3", "other/", authority=authority),
    )
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    for key, data in local.items():
        disk.put(f"raw/{key}", data)
    for key, (data, foreign) in remote.items():
        s3.put(f"datasets/raw/{key}", data, foreign=foreign)
    assert_applyable(d, planned(d, disk, s3))


# --- the audit's repro: a delete retargeted outside every mapping -----------------------------------------


def test_a_delete_retargeted_outside_every_mapping_is_refused_by_name() -> None:
    d, p = pruned_world()
    stale = action(p, ActionKind.DELETE)
    tampered = replaced(p, stale, retarget(stale, "outside/keep.json"))
    found = problems(d, through_the_file(tampered).plan)
    assert found == [
        "delete s3:outside/keep.json lies outside what mapping 'raw' manages (s3:datasets/raw/)"
    ]
    with pytest.raises(UnsafeSavedPlan) as refused:
        saved_checks.check(d, tampered, GuardLimits(), plan_file="plan.json")
    message = str(refused.value)
    assert message.startswith(
        "saved plan plan.json is not applyable against the current specs; nothing was touched:\n"
        "  delete s3:outside/keep.json lies outside"
    )
    assert message.endswith("Run `pixel plan -out plan.json` again, review it, then apply it")


def test_the_repro_with_no_etag_is_refused_when_the_file_is_read() -> None:
    _, p = pruned_world()
    data = serialize.to_dict(p)
    delete = next(a for a in data["actions"] if a["kind"] == "delete")
    delete.update(key="outside/keep.json", id="delete:s3:outside/keep.json")
    delete["precondition"]["target_etag"] = None
    with pytest.raises(PlanFileError) as refused:
        serialize.saved_from_dict(json.loads(json.dumps(data)), source="plan.json")
    assert str(refused.value) == (
        "plan.json: saved plan is not applyable: delete s3:outside/keep.json has no expected ETag "
        "(precondition.target_etag); nothing was touched"
    )


# --- preconditions ----------------------------------------------------------------------------------------


def test_a_delete_without_an_expected_etag_is_refused_s3_and_local() -> None:
    d, p = pruned_world()
    stale = action(p, ActionKind.DELETE)
    bare = replaced(p, stale, retarget(stale, stale.target.key, target_etag=None))
    assert problems(d, bare) == [f"delete {stale.target} has no expected ETag (precondition.target_etag)"]

    local = dataclasses.replace(stale, id="delete:disk:raw/x", target=ObjectRef("disk", "raw/x"),
                                precondition=Precondition())
    pull = desired(raw(authority=Authority.S3, prune_local=True))
    assert problems(pull, Plan((local,), ())) == [
        "delete disk:raw/x has no expected version (size-mtime) of the local file (precondition.target_etag)"
    ]


def test_an_overwrite_without_an_expected_etag_is_refused() -> None:
    d, p = pruned_world()
    update = next(a for a in p.actions if a.kind is ActionKind.UPLOAD and a.change is Change.UPDATE)
    tampered = replaced(p, update, retarget(update, update.target.key, target_etag=None))
    serialize.validate(serialize.to_dict(tampered))  # the schema cannot tell: the saved-plan check does
    assert problems(d, tampered) == [
        "upload s3:datasets/raw/changed.jsonl overwrites with no expected ETag (precondition.target_etag)"
    ]


def test_a_create_without_target_absent_is_refused_by_the_schema_and_the_check() -> None:
    d, p = pruned_world()
    create = next(a for a in p.actions if a.change is Change.CREATE)
    tampered = replaced(p, create, retarget(create, create.target.key, target_absent=False))
    assert problems(d, tampered) == [
        f"upload {create.target} creates without requiring the target to be absent (precondition.target_absent)"
    ]
    with pytest.raises(PlanFileError, match=re.escape(
        f"saved plan is not applyable: upload {create.target} creates without requiring the target to be absent"
    )):
        serialize.from_dict(serialize.to_dict(tampered))


def test_a_write_whose_change_is_not_create_or_update_is_refused() -> None:
    d, p = pruned_world()
    create = next(a for a in p.actions if a.change is Change.CREATE)
    tampered = replaced(p, create, dataclasses.replace(create, change=Change.READ,
                                                       precondition=Precondition()))
    assert problems(d, tampered) == [f"upload {create.target} is neither a create nor an update (change: 'read')"]


def test_an_unpinned_rehash_is_refused() -> None:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("raw/big", b"multipart")
    s3.put("datasets/raw/big", b"multipart", foreign=True)
    d = desired()
    p = planned(d, disk, s3)
    rehash = action(p, ActionKind.REHASH)
    tampered = replaced(p, rehash, retarget(rehash, rehash.target.key, source_etag=None))
    assert problems(d, tampered) == [
        "rehash s3:datasets/raw/big is not pinned to the ETag it reads (precondition.source_etag)"
    ]


# --- where ------------------------------------------------------------------------------------------------


def test_deletes_under_a_non_pruning_or_protected_mapping_are_refused() -> None:
    _, p = pruned_world()
    assert problems(desired(raw(prune=False)), p) == [
        "delete s3:datasets/raw/stale.jsonl mapping 'raw' does not prune (prune: true lets pixel delete there)"
    ]
    assert problems(desired(raw(protect=True)), p) == [
        "delete s3:datasets/raw/stale.jsonl mapping 'raw' is protected (protect: true)"
    ]
    excluded = desired(raw(exclude=("stale*",)))
    assert problems(excluded, p) == [
        "delete s3:datasets/raw/stale.jsonl lies outside what mapping 'raw' manages "
        "(s3:datasets/raw/ with its include/exclude)"
    ]


def test_the_ownership_guard_runs_again() -> None:
    _, p = pruned_world()
    keep = MappingSpec("keep", "disk", "keep", "s3", "datasets/raw/", prune=False)
    assert problems(desired(raw(), keep), p) == [
        "refusing 1 delete(s) planned by mapping 'raw': it does not own the prefix exclusively: also covered "
        "by 'keep': s3:datasets/raw/stale.jsonl"
    ]


def test_pixels_own_keys_are_never_pruned_even_under_a_whole_bucket_mapping() -> None:
    _, p = pruned_world()
    whole = desired(raw(s3_prefix=""))
    stale = action(p, ActionKind.DELETE)
    tampered = Plan((retarget(stale, ".pixel/lock"),), ())
    assert problems(whole, tampered) == [
        "delete s3:.pixel/lock lies in pixel's own space of store 's3', which no mapping manages"
    ]
    assert guards.ownership_errors(whole, tampered) == [
        "refusing 1 delete(s) planned by mapping 'raw': keys under .pixel/ are pixel's own (lock, scratch) "
        "and are never pruned: s3:.pixel/lock"
    ]


def test_unknown_mapping_store_and_direction_are_refused() -> None:
    d, p = pruned_world()
    stale = action(p, ActionKind.DELETE)
    assert problems(d, Plan((dataclasses.replace(stale, mapping="ghost"),), ())) == [
        "delete s3:datasets/raw/stale.jsonl names mapping 'ghost', which the specs do not declare"
    ]
    elsewhere = dataclasses.replace(stale, target=ObjectRef("other-bucket", stale.target.key))
    assert problems(d, Plan((elsewhere,), ()))[0] == (
        "delete other-bucket:datasets/raw/stale.jsonl names store 'other-bucket', which the specs do not declare; "
        "lies outside what mapping 'raw' manages (s3:datasets/raw/)"
    )
    upload = next(a for a in p.actions if a.kind is ActionKind.UPLOAD)
    assert upload.source is not None
    download = dataclasses.replace(upload, kind=ActionKind.DOWNLOAD, target=upload.source, source=upload.target)
    assert problems(d, Plan((download,), ())) == [
        "download disk:raw/changed.jsonl mapping 'raw' (authority: local) never plans a download"
    ]


def test_an_upload_reading_a_file_outside_its_mapping_is_refused() -> None:
    d, p = pruned_world()
    upload = next(a for a in p.actions if a.kind is ActionKind.UPLOAD and a.change is Change.CREATE)
    tampered = replaced(p, upload, dataclasses.replace(upload, source=ObjectRef("disk", "home/.ssh/id_rsa")))
    assert problems(d, tampered) == [
        f"upload {upload.target} reads disk:home/.ssh/id_rsa, outside what mapping 'raw' manages (disk:raw/)"
    ]


def test_dataset_registry_and_manifest_targets_must_be_the_declared_ones(tmp_path: Path) -> None:
    w = build(tmp_path)
    d, observed = w.observe()
    p = check(d, observed, make_plan(d, observed), GuardLimits())
    registry = next(a for a in p.actions if a.mapping == "registry")
    manifest = next(a for a in p.actions if a.kind is ActionKind.WRITE_MANIFEST and a.mapping.startswith("actor"))
    move_delete = next(a for a in p.actions if a.mapping == "datasets" and a.kind is ActionKind.DELETE)
    copy = next(a for a in p.actions if a.mapping == "datasets" and a.kind is ActionKind.COPY)
    tampered = (
        retarget(registry, "etc/passwd"),
        retarget(manifest, "data/actor_manifests/9999_manifest.json"),
        retarget(move_delete, "datasets/gdrive/raw/cot/reasoning.jsonl"),  # organise: copy, its source stays
        dataclasses.replace(copy, source=ObjectRef("lake", "datasets/gdrive/raw/edge/crisis.json")),
    )
    assert problems(d, Plan(tampered, ())) == [
        "write-manifest ws:etc/passwd is not where the specs generate the dataset registry "
        "(ws:ai/data/dataset_registry.json)",
        f"write-manifest ws:data/actor_manifests/9999_manifest.json is not the manifest of an actor synced by "
        f"mapping {manifest.mapping!r}",
        "delete lake:datasets/gdrive/raw/cot/reasoning.jsonl is not the S3 source of a dataset with organise: move",
        f"copy {copy.target} reads lake:datasets/gdrive/raw/edge/crisis.json, not the source of dataset "
        "'reasoning' (lake:datasets/gdrive/raw/cot/reasoning.jsonl)",
    ]


def test_the_tier_guards_run_again(tmp_path: Path) -> None:
    w = build(tmp_path)
    d, observed = w.observe()
    p = check(d, observed, make_plan(d, observed), GuardLimits())
    assert p.applyable
    shared_raw = dataclasses.replace(
        d, tiers=tuple(dataclasses.replace(t, protect=True) if t.name == "raw" else t for t in d.tiers)
    )
    assert problems(shared_raw, p) == [
        "refusing 1 delete(s): tier 'raw' is protected (protect: true): lake:datasets/gdrive/raw/edge/crisis.json"
    ]


def test_a_release_without_its_verify_is_refused() -> None:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("raw/shard-0", b"zero")
    d = desired(raw(release_local=True))
    p = planned(d, disk, s3)
    unverified = dataclasses.replace(p, edges=tuple(e for e in p.edges if not e[1].startswith("release-local")))
    assert problems(d, unverified) == [
        "refusing 1 release-local action(s) not preceded by a verify of the S3 copy: disk:raw/shard-0"
    ]


# --- limits and counts ------------------------------------------------------------------------------------


def many_deletes(n: int) -> tuple[Desired, Plan]:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("raw/kept", b"k")
    for i in range(n):
        s3.put(f"datasets/raw/old-{i:02}", b"o")
    d = desired()
    return d, planned(d, disk, s3, GuardLimits(max_delete=n, allow_mass_delete=True))


def test_the_recorded_max_delete_is_checked_again() -> None:
    d, p = many_deletes(6)
    saved = through_the_file(p, GuardLimits(max_delete=6, allow_mass_delete=True))
    assert saved.limits == GuardLimits(max_delete=6, allow_mass_delete=True)
    assert problems(d, saved.plan, saved.limits) == []
    assert problems(d, saved.plan, GuardLimits(max_delete=5, allow_mass_delete=True)) == [
        "the plan would delete 6 objects, more than --max-delete 5; check the source directories, "
        "then raise --max-delete if this is intended"
    ]


def test_the_mass_delete_rule_is_derived_again_from_the_recorded_object_counts() -> None:
    d, p = many_deletes(6)
    saved = through_the_file(p, GuardLimits(max_delete=6))
    assert saved.plan.object_counts == {"raw": 6}
    assert problems(d, saved.plan, saved.limits) == [
        "mapping 'raw' would delete 6 of the 6 objects under s3:datasets/raw/ (100%, more than 25%); "
        "is its source directory right? Re-run with --allow-mass-delete if this is intended"
    ]
    uncounted = dataclasses.replace(saved.plan, object_counts={})
    assert problems(d, uncounted, saved.limits) == [
        "mapping 'raw' would delete 6 objects under s3:datasets/raw/ but the plan records no object count "
        "for it; make the plan again"
    ]


def test_a_delete_added_by_hand_contradicts_the_summary() -> None:
    _, p = many_deletes(2)
    data = serialize.to_dict(p)
    extra = json.loads(json.dumps(next(a for a in data["actions"] if a["kind"] == "delete")))
    extra.update(key="datasets/raw/old-99", id="delete:s3:datasets/raw/old-99")
    data["actions"].append(extra)
    with pytest.raises(PlanFileError, match=r"plan.json: the summary contradicts the actions \(delete\)"):
        serialize.saved_from_dict(data, source="plan.json")


def test_many_offending_actions_are_listed_ten_then_counted() -> None:
    _, p = many_deletes(14)
    with pytest.raises(UnsafeSavedPlan) as refused:
        saved_checks.check(desired(raw(prune=False)), p, GuardLimits(), plan_file="p.json")
    lines = str(refused.value).splitlines()
    assert sum(line.startswith("  delete s3:datasets/raw/old-") for line in lines) == 10
    assert "  … and 4 more" in lines


def test_the_schema_exempts_exactly_pixels_temp_prefix() -> None:
    schema = load_schema("plan.schema.json")
    pattern = schema["$defs"]["action"]["allOf"][1]["if"]["properties"]["key"]["not"]["pattern"]
    assert re.match(pattern, TEMP_PREFIX + "x") and not re.match(pattern, "datasets/" + TEMP_PREFIX)
