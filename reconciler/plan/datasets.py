"""Planner passes for the dataset registry and the tiers.

`plan_datasets`: every dataset must sit at its canonical key. A local source is
uploaded; an S3 source (a raw object organised into processed) is copied
server side with CopySourceIfMatch on the ETag the plan saw, so no byte leaves
the bucket. `organise: move` adds two nodes after the copy, the same shape the
moves pass uses:

    copy (kind move) -> verify (HEAD: size and md5 of the new key) -> delete the source (If-Match)

so the source is deleted only once the copy is verified, and a failed copy or
verify skips the delete.

`plan_tier_guards`: a delete inside a shared or protected tier makes the plan
an error.
"""

from __future__ import annotations

from reconciler.model import (
    Action,
    ActionKind,
    Change,
    DatasetSpec,
    Desired,
    Entry,
    Finding,
    FindingKind,
    ObjectRef,
    Observed,
    Organise,
    Plan,
    tier_of,
)
from reconciler.plan.diff import (
    action_id,
    delete_action,
    rehash_action,
    short,
    transfer_precondition,
    verify_action,
)
from reconciler.plan.view import PlanView, on_plan
from reconciler.rules import PairState, classify, tier_refusal
from reconciler.units import human_bytes

SCOPE = "datasets"  # the `mapping` of every action this pass plans
_NAMED = 3  # keys an error names; the rest are counted


def tier_entry(desired: Desired, observed: Observed, store: str, key: str) -> Entry | None:
    tier = tier_of(desired.tiers, store, key)
    if tier is None:
        return None
    return observed.tiers.get(tier.name, {}).get(key)


def _rehash(ref: ObjectRef, entry: Entry, why: str) -> Action:
    """Read an S3 object whose md5 is unknown and record it: the same size is not the same content."""
    return rehash_action(
        SCOPE,
        ref,
        entry,
        f"{why}: md5 unknown (ETag {entry.etag or '?'} is not an md5) and the size is the source's; "
        "read the object and record its md5, then the next plan knows whether to copy",
    )


def _missing(dataset: DatasetSpec, what: str) -> Finding:
    """A dataset pixel can neither find nor make; `what` follows its name."""
    return Finding(FindingKind.MISSING, SCOPE, f"{dataset.store}:{dataset.key}", f"dataset {dataset.name!r}{what}")


_WRITERS = frozenset({ActionKind.UPLOAD, ActionKind.COPY, ActionKind.MOVE})


def _source_entry(
    desired: Desired, observed: Observed, dataset: DatasetSpec, view: PlanView
) -> tuple[Entry | None, Action | None]:
    """The source as it will be when the organising copy runs, and the action that puts it there, if any."""
    ref = dataset.source
    assert ref is not None
    if ref in observed.sources:
        return observed.sources[ref], None
    writer = last_writer(view, ref)
    if writer is not None and writer.md5 is not None:
        # Uploaded by this same plan (a raw file first seen now): copy what the upload will have written.
        # No ETag to pin yet; the copy's own size/md5 check of the landed object stands in for it.
        return Entry(key=ref.key, size=writer.size, md5=writer.md5), writer
    return tier_entry(desired, observed, ref.store, ref.key), None


def last_writer(view: PlanView, ref: ObjectRef) -> Action | None:
    """The last action of the plan that writes `ref` (an upload, copy or move), if any."""
    return next((a for a in reversed(view.at(ref)) if a.kind in _WRITERS), None)


def _organise(dataset: DatasetSpec, source: Entry, target: Entry | None, local: bool) -> Action:
    assert dataset.source is not None
    target_ref = ObjectRef(dataset.store, dataset.key)
    if local:
        kind, how = ActionKind.UPLOAD, f"upload {human_bytes(source.size)}"
    else:
        kind = ActionKind.MOVE if dataset.organise is Organise.MOVE else ActionKind.COPY
        how = "server-side copy, nothing downloaded"
    change = Change.CREATE if target is None else Change.UPDATE
    why = "not there yet" if target is None else f"holds md5 {short(target.md5)}, the source {short(source.md5)}"
    return Action(
        id=action_id(kind, target_ref),
        kind=kind,
        change=change,
        mapping=SCOPE,
        source=dataset.source,
        target=target_ref,
        size=source.size,
        md5=source.md5,
        reason=f"dataset {dataset.name!r} from {dataset.source.key} ({why}): {how}",
        precondition=transfer_precondition(source, target, local_source=local),
    )


def _retire_source(
    dataset: DatasetSpec, source: Entry, copy: Action | None
) -> tuple[list[Action], list[tuple[str, str]]]:
    """verify -> delete for a move; the verify waits for the copy when there is one."""
    assert dataset.source is not None
    target_ref = ObjectRef(dataset.store, dataset.key)
    verify = verify_action(
        target_ref, SCOPE, source, f"check {dataset.key} holds md5 {short(source.md5)} before its source is deleted"
    )
    delete = delete_action(
        SCOPE,
        dataset.source,
        source,
        f"moved to {dataset.key} (dataset {dataset.name!r}, organise: move); deleted once the copy is verified",
    )
    edges = [(verify.id, delete.id)]
    if copy is not None:
        edges.append((copy.id, verify.id))
    return [verify, delete], edges


def _rehashes(
    dataset: DatasetSpec, source: Entry, target: Entry, local: bool, rehashed: set[ObjectRef]
) -> list[Action]:
    """The rehash of each S3 side of the pair whose md5 is unknown (a local file is always hashed)."""
    assert dataset.source is not None
    sides = [(ObjectRef(dataset.store, dataset.key), target, f"dataset {dataset.name!r}")]
    if not local:
        sides.append((dataset.source, source, f"the source of dataset {dataset.name!r}"))
    return [_rehash(ref, entry, why) for ref, entry, why in sides if entry.md5 is None and ref not in rehashed]


def datasets_pass(desired: Desired, observed: Observed, view: PlanView) -> None:
    """`plan_datasets` on any view of the plan: it reads only the actions at the datasets' keys and sources."""
    actions: list[Action] = []
    edges: list[tuple[str, str]] = []
    findings: list[Finding] = []
    owned: set[str] = set()
    # Objects some action already reads for its md5 (a mapping's, or another dataset's): one rehash each.
    rehashed = {
        a.target
        for d in desired.datasets
        for ref in (ObjectRef(d.store, d.key), d.source)
        if ref is not None
        for a in view.at(ref)
        if a.kind is ActionKind.REHASH
    }
    for dataset in desired.datasets:
        owned.add(f"{dataset.store}:{dataset.key}")
        if any(a.kind is not ActionKind.DELETE for a in view.at(ObjectRef(dataset.store, dataset.key))):
            continue  # a mapping already writes this key; it is the registry's record, not a second writer
        target = tier_entry(desired, observed, dataset.store, dataset.key)
        if dataset.source is None:
            if target is None:
                findings.append(_missing(dataset, " is declared but not in S3, and it has no source"))
            continue
        source, writer = _source_entry(desired, observed, dataset, view)
        if source is None:
            if target is None:
                findings.append(
                    _missing(dataset, f": neither its source {dataset.source} nor its canonical object exists")
                )
            continue
        local = dataset.source in observed.sources
        copy = None
        # Equality is the pair rule's: the same size with an md5 unknown on a side is a rehash, not "equal".
        state = None if target is None else classify(source, target)
        read: list[Action] = []
        if state is PairState.UNKNOWN:
            assert target is not None
            read = _rehashes(dataset, source, target, local, rehashed)
            actions.extend(read)
            rehashed.update(a.target for a in read)
        elif state is not PairState.SYNCED:
            copy = _organise(dataset, source, target, local)
            actions.append(copy)
            if writer is not None:
                edges.append((writer.id, copy.id))
        if dataset.organise is Organise.MOVE and not local and source.md5 is not None:
            owned.add(str(dataset.source))
            more, more_edges = _retire_source(dataset, source, copy)
            actions.extend(more)
            edges.extend(more_edges)
            # The verify (and so the delete) waits for the md5 a rehash records: it would find none before.
            edges.extend((a.id, more[0].id) for a in read)
    # The registry accounts for these objects: a non-pruning mapping over them must not call them unmanaged.
    if owned:
        view.drop_findings(FindingKind.UNMANAGED, owned)
    view.add(actions, edges, findings)


plan_datasets = on_plan(datasets_pass)


def dataset_deletes(plan: Plan) -> set[tuple[str, str]]:
    """Sources this pass deletes after a verified copy: the tier rules, not a mapping's prune, allow them."""
    return {(a.target.store, a.target.key) for a in plan.actions if a.kind is ActionKind.DELETE and a.mapping == SCOPE}


def tier_guards_pass(desired: Desired, observed: Observed, view: PlanView) -> None:
    """A delete inside a shared or protected tier refuses the plan; reads the deletes one at a time, keeping per
    rule a count and the first keys it names."""
    if not desired.tiers:
        return
    broken: dict[str, tuple[int, list[str]]] = {}
    for action in view.of_kind(ActionKind.DELETE):
        tier = tier_of(desired.tiers, action.target.store, action.target.key)
        if tier is None or (rule := tier_refusal(tier)) is None:
            continue
        count, keys = broken.get(rule, (0, []))
        if len(keys) < _NAMED:
            keys.append(str(action.target))
        broken[rule] = (count + 1, keys)
    errors = []
    for rule, (count, keys) in sorted(broken.items()):
        shown = ", ".join(keys) + (f" and {count - len(keys)} more" if count > len(keys) else "")
        errors.append(f"refusing {count} delete(s): {rule}: {shown}")
    if errors:
        view.refuse(errors)


plan_tier_guards = on_plan(tier_guards_pass)
