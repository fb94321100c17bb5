"""What a saved plan must satisfy against the CURRENT specs before `pixel apply FILE` touches anything.

A plan file is input: it may have been edited by hand, or written from specs
that differ in a way the spec digest does not see. The spec digest says the
specs did not change; these checks say every action is one the specs could
have planned. Pure: the current Desired (with its discovered actors) and the
plan in, the problems out.

1. Where: every action's target (and source) lies where the scope it names
   manages. A mapping's action is of a kind the planner's own rules table
   (`rules.allowed_actions`: the steps the mapping's authority takes) gives it,
   on the side that step writes (an upload on the S3 prefix, a download in the
   local directory, a delete on the pruned side of a pruning, unprotected
   mapping), under the prefix and selected by the mapping's include/exclude; a parked copy under `.pixel/tmp/`; a
   manifest write is an actor's manifest. A dataset action is a dataset's
   canonical key from its declared source, or (organise: move) the delete of
   that source. The registry and the inventory are written where the specs say.
   No key may hold a "." or ".." segment (`raw/../outside` starts with `raw/`).
2. Preconditions: every delete and release-local carries the version it
   expects (If-Match), every overwrite too, every create requires absence
   (If-None-Match: *) except a parked copy in pixel's own scratch space, and a
   rehash is pinned to the ETag it read (CopySourceIfMatch). Without them the
   action would run unconditionally.
3. Every delete guard `plan` runs (guards.guard_errors and the tier rules),
   derived again from the actions that passed 1 and 2, the limits the plan was
   made with and the per-mapping object counts observed when it was made (both
   recorded in the file under its guard digest). The file's own `errors` and
   `applyable` never let an action through.
4. Targets: a plan made with `--target` records its targets; every action must
   also lie where the specs narrowed to those targets manage (1. again, on
   the narrowed specs), so an edited targeted plan cannot reach further.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from reconciler.actor_layout import LEGACY_SCOPE, legacy_deletes
from reconciler.errors import UserError
from reconciler.keys import dot_segment, printable
from reconciler.model import (
    TEMP_PREFIX,
    Action,
    ActionKind,
    Authority,
    Change,
    DatasetSpec,
    Desired,
    MappingSpec,
    ObjectRef,
    Observed,
    Organise,
    Plan,
    S3StoreSpec,
)
from reconciler.plan import guards
from reconciler.plan.datasets import SCOPE as DATASETS_SCOPE
from reconciler.plan.datasets import plan_tier_guards
from reconciler.plan.final import SCOPE as FINAL_SCOPE
from reconciler.plan.final import final_deletes
from reconciler.plan.generated import INVENTORY_SCOPE, REGISTRY_SCOPE
from reconciler.plan.guards import GuardLimits
from reconciler.plan.record_index import SCOPE as RECORD_INDEX_SCOPE
from reconciler.plan.record_index import index_problem
from reconciler.rules import Side, allowed_actions, mapping_own_space, prunes, selection, strip_prefix
from reconciler.targets import narrow

_WRITES = frozenset(
    {
        ActionKind.UPLOAD,
        ActionKind.DOWNLOAD,
        ActionKind.COPY,
        ActionKind.MOVE,
        ActionKind.WRITE_MANIFEST,
        ActionKind.COMPILE,  # writes the manifest: If-None-Match to publish the first, If-Match to replace one
    }
)
_DELETES = frozenset({ActionKind.DELETE, ActionKind.RELEASE_LOCAL})
_SHOWN = 10  # offending actions listed one per line; the rest are counted


class UnsafeSavedPlan(UserError):
    """A saved plan whose actions the current specs do not allow, or that would run without preconditions."""


def label(action: Action) -> str:
    return f"{action.kind.value} {action.target}"


# --- 1. where ---------------------------------------------------------------------------------------------


def _on_side(desired: Desired, ref: ObjectRef | None, store: str, prefix: str, spec: MappingSpec, size: int) -> bool:
    """`ref` is under (store, prefix) and the mapping owns it (`rules.Selection`: globs, min_size, and pixel's
    own space on either of the mapping's sides)."""
    if ref is None or ref.store != store:
        return False
    rel = strip_prefix(prefix, ref.key)
    return rel is not None and selection(spec)(rel, size) and not mapping_own_space(desired, spec).holds(rel)


def _mapping_problem(desired: Desired, spec: MappingSpec, action: Action) -> str | None:
    """The action is one the rules table lets this mapping plan: its kind comes from a step the mapping's
    authority takes, and its target and source lie on the sides that step writes and reads."""
    name, kind = spec.name, action.kind
    if kind is ActionKind.WRITE_MANIFEST:
        if any(a.manifest == action.target for a in desired.actors if a.mapping == name):
            return None
        return f"is not the manifest of an actor synced by mapping {name!r}"
    allowed = allowed_actions(spec.authority, release_local=spec.release_local)
    if not allowed:
        return f"mapping {name!r} is report-only (authority: none): pixel changes nothing there"
    if kind not in allowed:
        return f"mapping {name!r} (authority: {spec.authority.value}) never plans a {kind.value}"
    target_side, source_side = allowed[kind]
    s3 = (spec.s3_store, spec.s3_prefix, f"{spec.s3_store}:{spec.s3_prefix}")
    local = (spec.local_store, spec.local_base, f"{spec.local_store}:{spec.local_base}")
    sides = {Side.S3: s3, Side.LOCAL: local, Side.DELETED: local if spec.authority is Authority.S3 else s3}
    filtered = " with its include/exclude" if spec.include or spec.exclude else ""

    def in_scratch(ref: ObjectRef | None) -> bool:
        return ref is not None and ref.store == spec.s3_store and ref.key.startswith(TEMP_PREFIX)

    if target_side is Side.SCRATCH:
        if not in_scratch(action.target):
            return f"a copy of mapping {name!r} may only park a key under {spec.s3_store}:{TEMP_PREFIX}"
    elif desired.reserves(action.target):
        return f"lies in pixel's own space of store {action.target.store!r}, which no mapping manages"
    elif not _on_side(desired, action.target, *sides[target_side][:2], spec, action.size):
        return f"lies outside what mapping {name!r} manages ({sides[target_side][2]}{filtered})"
    if kind is ActionKind.DELETE:
        if not prunes(spec):
            setting = "prune_local" if spec.authority is Authority.S3 else "prune"
            return f"mapping {name!r} does not prune ({setting}: true lets pixel delete there)"
        if spec.protect:
            return f"mapping {name!r} is protected (protect: true)"
    # A rehash or verify may read nothing; the second half of a swap reads the parked copy.
    unread = kind in (ActionKind.REHASH, ActionKind.VERIFY) and action.source is None
    if source_side is None or unread or (kind is ActionKind.MOVE and in_scratch(action.source)):
        return None
    store, prefix, area = sides[source_side]
    read = action.source
    if _on_side(desired, read, store, prefix, spec, action.size) and not (read and desired.reserves(read)):
        return None
    return f"reads {action.source}, outside what mapping {name!r} manages ({area})"


@dataclasses.dataclass(frozen=True, slots=True)
class _Managed:
    """The current specs, indexed once per check: a plan may hold a million actions."""

    desired: Desired
    mappings: dict[str, MappingSpec]
    datasets: dict[ObjectRef, DatasetSpec]

    @classmethod
    def of(cls, desired: Desired) -> _Managed:
        return cls(
            desired,
            {m.name: m for m in desired.mappings},  # names are unique across the specs and discovered actors
            {ObjectRef(d.store, d.key): d for d in desired.datasets},
        )


def _datasets_problem(managed: _Managed, action: Action) -> str | None:
    desired, kind = managed.desired, action.kind
    if kind is ActionKind.DELETE:
        # organise: move deletes an S3 source once its copy is verified; a local source is never deleted.
        moved = any(d.organise is Organise.MOVE and d.source == action.target for d in desired.datasets)
        if moved and isinstance(desired.stores.get(action.target.store), S3StoreSpec):
            return None
        return "is not the S3 source of a dataset with organise: move"
    if kind is ActionKind.REHASH and action.source is None:
        # An md5-unknown pair of the same size: the canonical object or an S3 source is read for its md5.
        read = action.target in managed.datasets or any(d.source == action.target for d in desired.datasets)
        if read and isinstance(desired.stores.get(action.target.store), S3StoreSpec):
            return None
        return "is neither the canonical key nor the S3 source of a dataset in the specs"
    dataset = managed.datasets.get(action.target)
    if dataset is None:
        return "is not the canonical key of a dataset in the specs"
    if kind is ActionKind.VERIFY:
        return None
    if kind not in (ActionKind.UPLOAD, ActionKind.COPY, ActionKind.MOVE):
        return f"a dataset is never the target of a {kind.value}"
    if action.source != dataset.source:
        return f"reads {action.source}, not the source of dataset {dataset.name!r} ({dataset.source})"
    return None


def _generated_problem(declared: ObjectRef | None, what: str, action: Action) -> str | None:
    if action.kind is ActionKind.WRITE_MANIFEST and declared is not None and action.target == declared:
        return None
    return f"is not where the specs generate the {what} ({declared or 'none declared'})"


def _final_problem(desired: Desired, action: Action) -> str | None:
    final = desired.final
    if final is None:
        return "names the final dataset, which the specs do not declare"
    if action.kind is ActionKind.COMPILE:
        if action.target != final.manifest or action.source is not None:
            return f"is not the final dataset's manifest ({final.manifest})"
        return None if action.precondition.source_md5 else "is not pinned to its sources (precondition.source_md5)"
    if action.kind is ActionKind.DELETE:
        if (action.target.store, action.target.key) in final_deletes(desired, Plan((action,), ())):
            return None
        return f"is not a shard under {final.store}:{final.prefix} guarded by the manifest {final.manifest}"
    if action.kind is ActionKind.DOWNLOAD:
        if action.source == final.manifest and action.target == final.manifest_local:
            return None
        return f"is not the download of the manifest to its kept local copy ({final.manifest_local})"
    return f"the final dataset never plans a {action.kind.value}"


def _where_problem(managed: _Managed, action: Action) -> str | None:
    """None when `action` lies where the scope it names manages, else why not."""
    desired = managed.desired
    spec = managed.mappings.get(action.mapping)
    readings = [] if spec is None else [_mapping_problem(desired, spec, action)]
    # A mapping may share its name with the datasets, registry or inventory scope: either reading may allow it.
    if action.mapping == DATASETS_SCOPE:
        readings.append(_datasets_problem(managed, action))
    elif action.mapping == REGISTRY_SCOPE:
        readings.append(_generated_problem(desired.registry, "dataset registry", action))
    elif action.mapping == INVENTORY_SCOPE:
        readings.append(_generated_problem(desired.inventory, "inventory", action))
    elif action.mapping == FINAL_SCOPE:
        readings.append(_final_problem(desired, action))
    elif action.mapping == RECORD_INDEX_SCOPE:
        readings.append(index_problem(desired, action))
    elif action.mapping == LEGACY_SCOPE:
        allowed = legacy_deletes(desired, (action,))
        readings.append(None if allowed else "is not a legacy response.json the specs let pixel delete")
    if not readings:
        return f"names mapping {action.mapping!r}, which the specs do not declare"
    if None in readings:
        return None
    return readings[0]


# --- 2. preconditions -------------------------------------------------------------------------------------


def precondition_problem(desired: Desired, action: Action) -> str | None:
    """None when the action cannot run unconditionally, else what it lacks."""
    store = desired.stores.get(action.target.store)
    if store is None:
        return f"names store {action.target.store!r}, which the specs do not declare"
    version = "expected ETag" if isinstance(store, S3StoreSpec) else "expected version (size-mtime) of the local file"
    pre, kind = action.precondition, action.kind
    if kind in _DELETES:
        return None if pre.target_etag else f"has no {version} (precondition.target_etag)"
    if kind is ActionKind.REHASH:
        # An in-place copy: CopySourceIfMatch on the ETag read is what keeps it from overwriting a newer object.
        return None if pre.source_etag else "is not pinned to the ETag it reads (precondition.source_etag)"
    if kind not in _WRITES:
        return None  # verify only reads
    if action.change is Change.CREATE:
        if pre.target_absent or action.target.key.startswith(TEMP_PREFIX):
            return None
        return "creates without requiring the target to be absent (precondition.target_absent)"
    if action.change is Change.UPDATE:
        return None if pre.target_etag else f"overwrites with no {version} (precondition.target_etag)"
    return f"is neither a create nor an update (change: {action.change.value!r})"


def key_problem(action: Action) -> str | None:
    """A key with "." or ".." segments: a server may resolve it to another key (SeaweedFS does; AWS keeps it),
    so the action could land outside the scope the prefix check sees. Refused in a saved plan."""
    for ref in (action.target, action.source):
        if ref is not None and (dots := dot_segment(ref.key)):
            return f'names the key {ref} with a "{dots}" segment, which a server may resolve to another key'
    return None


# --- 3. the guards, and all together ----------------------------------------------------------------------


def _guard_errors(
    desired: Desired, plan: Plan, limits: GuardLimits, *, finding_kinds: Mapping[str, int] | None = None
) -> list[str]:
    # Derived from the actions, never read from the file: its own `errors` are dropped, so none hides a rule.
    plan = dataclasses.replace(plan, errors=())
    errors = guards.guard_errors(desired, plan, limits, finding_kinds=finding_kinds)
    # The tier rules (shared or protected tiers) read only the specs and the plan.
    errors += plan_tier_guards(desired, Observed(mappings={}), plan).errors
    return errors


def problems(desired: Desired, plan: Plan, limits: GuardLimits | None = None) -> list[str]:
    """Every reason not to apply `plan` against `desired`: one line per offending action, then the guards' errors
    with `limits` (the defaults `pixel plan` uses when not given)."""
    managed = _Managed.of(desired)
    scoped = _Managed.of(narrow(desired, plan.targets)) if plan.targets else None
    lines: list[str] = []
    clean: list[Action] = []
    for action in plan.actions:
        checks = (key_problem(action), precondition_problem(desired, action), _where_problem(managed, action))
        found = [p for p in checks if p]
        if not found and scoped is not None and _where_problem(scoped, action) is not None:
            found.append(f"lies outside the plan's targets ({', '.join(plan.targets)})")
        if found:
            lines.append(f"{label(action)} {'; '.join(found)}")
        else:
            clean.append(action)
    # The guards judge what is left: an action refused above is named once, not again by a guard.
    lines += _guard_errors(desired, dataclasses.replace(plan, actions=tuple(clean)), limits or GuardLimits())
    return lines


def _shown(lines: Iterable[str]) -> str:
    lines = list(lines)
    more = len(lines) - _SHOWN
    text = "\n  ".join(lines[:_SHOWN])
    return text + (f"\n  … and {more} more" if more > 0 else "")


def check(desired: Desired, plan: Plan, limits: GuardLimits, *, plan_file: str) -> None:
    """Raise UnsafeSavedPlan naming every offending action; return when the plan may be applied."""
    found = problems(desired, plan, limits)
    if found:
        raise UnsafeSavedPlan(
            f"saved plan {plan_file} is not applyable against the current specs; nothing was touched:\n  "
            f"{_shown(printable(line) for line in found)}\n"
            f"Run `pixel plan -out {plan_file}` again, review it, then apply it"
        )
