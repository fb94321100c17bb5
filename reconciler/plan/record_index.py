"""Planner pass: a write-manifest node for each registered dataset object whose record index is not in S3.

The index (loader/index.py: record count, the spans of a big JSON Lines object)
lets every rank of a training job know its share before its first record
without reading the object: apply builds it once, from bytes whose md5 it has
checked against the one planned, and keeps it under the object's md5
(`manifests/record_index.py`). The md5 is the one the object holds after this
plan: a write of the object this plan makes (its index waits for it), else the
one observed. An index already there for that md5 is the same index (the bytes
of an md5 never change) once the registry vouches for it, so a second plan has
nothing to do. A key by md5 is only ever created, never overwritten or deleted.
"""

from __future__ import annotations

from reconciler.manifests.common import previous_document
from reconciler.manifests.record_index import FIELD, INDEXED_FORMATS, index_key
from reconciler.model import (
    Action,
    ActionKind,
    Change,
    Desired,
    GeneratedFile,
    ObjectRef,
    Observed,
    Precondition,
)
from reconciler.plan.datasets import tier_entry
from reconciler.plan.diff import action_id
from reconciler.plan.view import PlanView, on_plan

SCOPE = "record-index"  # the `mapping` of every action this pass plans
_WRITERS = frozenset({ActionKind.UPLOAD, ActionKind.COPY, ActionKind.MOVE})


def _planned(desired: Desired, observed: Observed, view: PlanView, ref: ObjectRef) -> tuple[str | None, str | None]:
    """(md5 the object holds after this plan, the action of this plan that writes it) — md5 None: unknown
    (a rehash first, a delete, or nothing there)."""
    for action in view.at(ref)[:1]:
        if action.kind in _WRITERS:
            return action.md5, action.id
        return None, None  # a rehash learns the md5, a delete removes the object: the next plan indexes
    entry = tier_entry(desired, observed, ref.store, ref.key)
    return (entry.md5 if entry is not None else None), None


def _vouched(desired: Desired, observed: Observed) -> dict[str, str] | None:
    """Dataset name -> the md5 of the record index the registry records for it; None when the registry cannot be
    read (it is then left alone, so nothing it would record is planned)."""
    assert desired.registry is not None
    content = observed.generated.get(desired.registry, GeneratedFile()).content
    if content is None:
        return {}
    document = previous_document(content)
    if document is None:
        return None
    datasets = document.get("datasets")
    out: dict[str, str] = {}
    if not isinstance(datasets, dict):
        return out  # rewritten by the registry's own node, after the indexes: nothing vouched for yet
    for name, entry in datasets.items():
        field = entry.get(FIELD) if isinstance(entry, dict) else None
        if isinstance(field, dict) and isinstance(field.get("md5"), str):
            out[str(name)] = str(field["md5"])
    return out


def record_indexes_pass(desired: Desired, observed: Observed, view: PlanView) -> None:
    """`plan_record_indexes` on any view of the plan: it reads only the actions at the datasets' keys."""
    if desired.registry is None:
        return  # nothing would vouch for an index: the loader would never use it
    recorded = _vouched(desired, observed)
    if recorded is None:
        return
    actions: dict[str, Action] = {}
    edges: list[tuple[str, str]] = []
    for dataset in desired.datasets:
        if dataset.format not in INDEXED_FORMATS:
            continue
        source = ObjectRef(dataset.store, dataset.key)
        md5, writer = _planned(desired, observed, view, source)
        if md5 is None:
            continue
        target = ObjectRef(dataset.store, index_key(md5, dataset.format))
        there = observed.record_indexes.get(target)
        if there is not None and there.md5 is not None and recorded.get(dataset.name) == there.md5:
            continue
        action = Action(
            id=action_id(ActionKind.WRITE_MANIFEST, target),
            kind=ActionKind.WRITE_MANIFEST,
            change=Change.CREATE,
            mapping=SCOPE,
            target=target,
            source=source,
            reason=f"record index of dataset {dataset.name} ({dataset.format}, md5 {md5}): "
            + ("not written yet" if there is None else "there, but the registry does not vouch for it: checked")
            + ("; built after the write of the object" if writer else ""),
            # Built only from bytes with this md5, and only where nothing is: a key by md5 is never replaced.
            precondition=Precondition(target_absent=True, source_md5=md5),
        )
        if action.id in actions:
            continue
        actions[action.id] = action
        if writer is not None:
            edges.append((writer, action.id))
    view.add(list(actions.values()), edges)


plan_record_indexes = on_plan(record_indexes_pass)


def index_problem(desired: Desired, action: Action) -> str | None:
    """None when a saved plan's action is the creation of a registered dataset's record index, else why not."""
    md5 = action.precondition.source_md5
    if action.kind is not ActionKind.WRITE_MANIFEST or action.change is not Change.CREATE or md5 is None:
        return "is not the creation of a record index pinned to its object's md5 (precondition.source_md5)"
    for dataset in desired.datasets:
        if dataset.format not in INDEXED_FORMATS or action.source != ObjectRef(dataset.store, dataset.key):
            continue
        if action.target == ObjectRef(dataset.store, index_key(md5, dataset.format)):
            return None
    return "is not the record index of a registered dataset's object, kept under its md5"
