"""The record-index pass: one node a registered dataset's object, after the write of it, under its md5; a saved
plan's record-index node is accepted only as exactly that."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from reconciler.manifests.record_index import index_key
from reconciler.model import ActionKind, Change, ObjectRef, Plan
from reconciler.plan import plan as make_plan
from reconciler.plan.guards import GuardLimits, check
from reconciler.plan.saved_checks import problems
from tests.unit.manifests.world import build
from tests.unit.plan.test_saved_plan_checks import assert_applyable, retarget


def test_each_registered_object_gets_an_index_node_after_its_write_and_a_saved_plan_keeps_it_exact(
    tmp_path: Path,
) -> None:
    w = build(tmp_path)
    d, observed = w.observe()
    p = check(d, observed, make_plan(d, observed), GuardLimits())
    indexes = [a for a in p.actions if a.mapping == "record-index"]
    present = {(x.store, x.key) for x in d.datasets if x.format in ("json", "jsonl")}
    assert {(a.source.store, a.source.key) for a in indexes if a.source is not None} <= present
    assert indexes
    edges = set(p.edges)
    for action in indexes:
        assert action.kind is ActionKind.WRITE_MANIFEST and action.change is Change.CREATE
        assert action.precondition.target_absent and action.precondition.source_md5
        assert action.target.key == index_key(action.precondition.source_md5, action.target.key.split(".")[-2])
        writers = [a.id for a in p.actions if a.target == action.source and a.kind.value in ("upload", "copy", "move")]
        assert all((writer, action.id) in edges for writer in writers)  # built from the bytes written first
        registry = next(a for a in p.actions if a.mapping == "registry")
        assert (action.id, registry.id) in edges  # the registry records its digest after it is written
    assert_applyable(d, p)

    index = indexes[0]
    assert index.source is not None
    other = next(a for a in p.actions if a.source is not None and a.source != index.source and a.kind.value == "copy")
    tampered = (
        retarget(index, "datasets/gdrive/processed/cot_reasoning/reasoning.jsonl"),  # over a dataset
        retarget(index, index_key("0" * 32, "jsonl")),  # another md5 than the one pinned
        dataclasses.replace(index, source=other.source),  # another object's bytes under this one's md5
        dataclasses.replace(index, change=Change.UPDATE),
    )
    found = problems(d, Plan(tampered, ()))
    assert len(found) == 4, found
    assert all("record index" in f for f in found)


def test_a_second_apply_plans_no_index_and_the_registry_vouches_for_each(tmp_path: Path) -> None:
    w = build(tmp_path)
    _, result, _ = w.apply()
    assert result.ok
    d, observed = w.observe()
    assert not [a for a in make_plan(d, observed).actions if a.mapping == "record-index"]
    registry = json.loads(w.ws.get("ai/data/dataset_registry.json"))
    vouched = {name: e["record_index"] for name, e in registry["datasets"].items() if "record_index" in e}
    assert vouched
    for name, field in vouched.items():
        assert ObjectRef("lake", field["s3_path"].split("/", 3)[3]) in observed.record_indexes, name


def test_an_index_the_registry_no_longer_vouches_for_is_checked_again_before_it_is_recorded(tmp_path: Path) -> None:
    w = build(tmp_path)
    _, result, _ = w.apply()
    assert result.ok
    w.ws.put("ai/data/dataset_registry.json", b"{}")  # emptied by hand: the registry's rewrite would record the
    d, observed = w.observe()  # indexes there, so each is checked against its object first
    p = make_plan(d, observed)
    indexes = {a.id for a in p.actions if a.mapping == "record-index"}
    assert indexes and {a.target for a in p.actions if a.id in indexes} <= set(observed.record_indexes)
    registry = next(a for a in p.actions if a.mapping == "registry")
    assert {(i, registry.id) for i in indexes} <= set(p.edges)
    _, result, _ = w.apply()
    assert result.ok  # the indexes there are the ones these bytes give: accepted, nothing rewritten
    d, observed = w.observe()
    assert not make_plan(d, observed).actions
