"""Delete guards: a pure pass that turns dangerous deletes into plan errors.

The classic accident is pointing a pruned mapping at the wrong (or an empty)
source directory: the plan then says "delete everything". These rules make
such a plan unapplyable, with a message saying which rule fired and how to
override it when the deletion really is intended:

- a delete must be of a key its mapping owns (its prefix, include/exclude and
  min_size), under a prefix it owns exclusively: the mapping prunes, and no
  other mapping that does not prune (or is protected) covers the key; keys
  under `.pixel/` (lock, scratch) are never pruned. The rule is
  `rules.delete_refusal`, the ownership rule every other consumer asks too;
- `protect: true` forbids every delete under that mapping (the first pass
  reports it per mapping; this pass catches deletes later passes add);
- at most `max_delete` deletes in one plan (`--max-delete`, default 100);
- at most `max_superseded` deletes of final-dataset shards a verified build superseded
  (`--max-superseded`, default 10,000), counted apart from `--max-delete`: a rebuild lists every
  shard of the previous build, each deleted only once the new manifest is in place and only if it
  does not name it, so a one-record change of a large dataset is not the accident the count is for;
- no mapping may lose more than `mass_fraction` (25%) of the objects under
  its prefix unless `allow_mass_delete` (`--allow-mass-delete`); fewer than
  `mass_min_count` deletes never count as mass deletion;
- a release-local (deleting a local file after upload) must wait for a verify
  of the S3 copy in the same plan.

Keys the plan itself creates (temporary keys that break move cycles) may
always be deleted, and a move's source delete is not counted: its bytes live
on at the new key.

The limits come from command-line flags, so this pass is not in
`planner.PASSES`: the plan and apply commands run `check` right after
`plan()` with the limits as an explicit input. Both stay pure.

`pixel apply FILE` derives every rule again from the saved plan (`guard_errors`,
from reconciler/plan/saved_checks.py): its actions, the limits it was made with
and the per-mapping object counts observed when it was made, which the file
records under a digest so that an edit to them is refused (serialize.py).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping

from reconciler.actor_layout import legacy_deletes
from reconciler.model import Action, ActionKind, Authority, Desired, MappingSpec, Observed, Plan
from reconciler.plan.datasets import dataset_deletes, plan_tier_guards
from reconciler.plan.final import final_deletes, superseded_deletes
from reconciler.rules import delete_refusal, deleted_side

DEFAULT_MAX_DELETE = 100
DEFAULT_MAX_SUPERSEDED = 10_000
DEFAULT_MASS_FRACTION = 0.25
# Below this many deletes in one mapping the fraction rule stays quiet: pruning
# the one stale object of a two-object prefix is routine, not an accident.
DEFAULT_MASS_MIN_COUNT = 5


@dataclasses.dataclass(frozen=True, slots=True)
class GuardLimits:
    max_delete: int = DEFAULT_MAX_DELETE
    max_superseded: int = DEFAULT_MAX_SUPERSEDED
    allow_mass_delete: bool = False
    mass_fraction: float = DEFAULT_MASS_FRACTION
    mass_min_count: int = DEFAULT_MASS_MIN_COUNT
    strict: bool = False  # --strict: any finding (orphan, missing, conflict, ...) makes the plan an error


def _ownership_errors(
    desired: Desired, plan: Plan, deletes: Iterable[Action], created: set[tuple[str, str]]
) -> list[str]:
    """One error per (mapping, rule) broken, naming a few of the keys, so 10,000 bad deletes read as one line."""
    by_name = {m.name: m for m in desired.mappings}
    broken: dict[tuple[str, str], list[str]] = {}
    for action in deletes:
        where = (action.target.store, action.target.key)
        if where in created:
            continue
        rule = delete_refusal(desired, by_name.get(action.mapping), *where, action.size)
        if rule is None:
            continue
        broken.setdefault((action.mapping, rule), []).append(str(action.target))
    errors = []
    for (mapping, rule), keys in sorted(broken.items()):
        if rule.startswith("it is protected") and any(f"mapping {mapping!r} is protected" in e for e in plan.errors):
            continue  # the first pass already said so
        shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        errors.append(f"refusing {len(keys)} delete(s) planned by mapping {mapping!r}: {rule}: {shown}")
    return errors


def _objects_under(spec: MappingSpec, observed: Observed) -> int:
    obs = observed.mappings.get(spec.name)
    if obs is None:
        return 0
    return len(obs.local) if spec.authority is Authority.S3 else len(obs.remote)


def object_counts(desired: Desired, observed: Observed) -> dict[str, int]:
    """Objects on each observed mapping's pruned side: what the mass-delete rule divides by."""
    return {spec.name: _objects_under(spec, observed) for spec in desired.mappings if spec.name in observed.mappings}


def _created(plan: Plan) -> set[tuple[str, str]]:
    """Keys this plan itself writes from a source (move targets, parked temp copies)."""
    return {
        (a.target.store, a.target.key) for a in plan.actions if a.kind is not ActionKind.DELETE and a.source is not None
    }


def ownership_errors(desired: Desired, plan: Plan) -> list[str]:
    """The ownership, protect and `.pixel/` rules for every pruning delete of `plan` (no limits involved).

    Also run on a saved plan when it is applied (reconciler/plan/saved_checks.py).
    """
    # release-local has its own rule (the upload must be verified first); only pruning deletes are guarded here.
    prunes = [a for a in plan.actions if a.kind is ActionKind.DELETE]
    # A dataset's organise: move deletes its source after a verified copy; the tier rules govern those.
    # The final dataset's shard deletes lie under its own prefix, which no mapping may overlap.
    exempt = _created(plan) | dataset_deletes(plan) | final_deletes(desired, plan)
    # A legacy response.json is deleted by its own opt-in flag (legacy_response_json: delete), not a mapping's prune.
    exempt |= legacy_deletes(desired, plan.actions)
    return _ownership_errors(desired, plan, prunes, exempt)


def delete_refusals(desired: Desired, delete: Action) -> list[str]:
    """Why a plan would refuse `delete`, by the rules that need no observation (ownership, protect, tiers).

    For a caller about to cause the delete (the service removing an image): ask first, touch nothing if refused.
    """
    plan = Plan(actions=(delete,), edges=())
    return ownership_errors(desired, plan) + list(plan_tier_guards(desired, Observed(mappings={}), plan).errors)


def counted_deletes(plan: Plan, superseded: set[tuple[str, str]] | None = None) -> list[Action]:
    """The deletes --max-delete and the mass-delete rule count: not a temp key's, not a move's source, not a
    superseded final-dataset shard (`superseded_deletes`, which --max-superseded counts)."""
    # A move's source delete keeps its bytes at the new key: a rename is not the accident the counts look for.
    moved_away = {(a.source.store, a.source.key) for a in plan.actions if a.kind is ActionKind.MOVE and a.source}
    skipped = _created(plan) | moved_away | (superseded or set())
    return [a for a in plan.actions if a.kind is ActionKind.DELETE and (a.target.store, a.target.key) not in skipped]


def max_delete_error(counted: int, max_delete: int) -> str | None:
    if counted <= max_delete:
        return None
    return (
        f"the plan would delete {counted} objects, more than --max-delete {max_delete}; "
        "check the source directories, then raise --max-delete if this is intended"
    )


def max_superseded_error(counted: int, max_superseded: int) -> str | None:
    if counted <= max_superseded:
        return None
    return (
        f"the plan would delete {counted} superseded final-dataset shards, more than --max-superseded "
        f"{max_superseded}; each goes only once the new manifest is in place and only if it does not name it: "
        "raise --max-superseded if this is intended"
    )


def mass_delete_errors(desired: Desired, plan: Plan, counted: Iterable[Action], limits: GuardLimits) -> list[str]:
    """The fraction rule, against the object counts the plan records (`object_counts`)."""
    if limits.allow_mass_delete:
        return []
    per_mapping = Counter(a.mapping for a in counted)
    errors = []
    for spec in desired.mappings:
        n = per_mapping.get(spec.name, 0)
        if n < limits.mass_min_count:
            continue
        total = plan.object_counts.get(spec.name, 0)
        store, prefix = deleted_side(spec)
        if total == 0:
            # Deletes from a mapping with no recorded count: the rule cannot be judged, so it does not pass.
            errors.append(
                f"mapping {spec.name!r} would delete {n} objects under {store}:{prefix} but the plan records "
                "no object count for it; make the plan again"
            )
            continue
        if n / total <= limits.mass_fraction:
            continue
        errors.append(
            f"mapping {spec.name!r} would delete {n} of the {total} objects under {store}:{prefix} "
            f"({n / total:.0%}, more than {limits.mass_fraction:.0%}); is its source directory right? "
            "Re-run with --allow-mass-delete if this is intended"
        )
    return errors


def guard_errors(
    desired: Desired, plan: Plan, limits: GuardLimits, *, finding_kinds: Mapping[str, int] | None = None
) -> list[str]:
    """Every rule a delete (or, with --strict, a finding) of `plan` breaks, from its actions and object counts.

    The one derivation of the verdict: `check` runs it when a plan is made, saved_checks.py when a saved
    plan is applied, so a file's own `errors` and `applyable` are never what lets it through. `finding_kinds`
    (findings counted per kind) stands in for `plan.findings` when a streamed plan counts them on disk.
    """
    errors = ownership_errors(desired, plan)
    superseded = superseded_deletes(desired, plan)
    counted = counted_deletes(plan, superseded)
    if too_many := max_delete_error(len(counted), limits.max_delete):
        errors.append(too_many)
    if too_many := max_superseded_error(len(superseded), limits.max_superseded):
        errors.append(too_many)
    errors += mass_delete_errors(desired, plan, counted, limits)
    kinds = Counter(f.kind.value for f in plan.findings) if finding_kinds is None else finding_kinds
    if limits.strict and (total := sum(kinds.values())):
        shown = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()) if n)
        errors.append(f"--strict: the plan has {total} finding(s) ({shown}); resolve them or drop --strict")
    errors += unverified_releases(plan)
    return errors


def check(desired: Desired, observed: Observed, plan: Plan, limits: GuardLimits) -> Plan:
    """The guard pass: `plan` with its object counts recorded and an error added for every rule it breaks."""
    plan = dataclasses.replace(plan, object_counts=object_counts(desired, observed))
    errors = guard_errors(desired, plan, limits)
    if not errors:
        return plan
    return dataclasses.replace(plan, errors=(*plan.errors, *errors))


def unverified_releases(plan: Plan) -> list[str]:
    """A local file may only be released after a verify of its S3 copy in the same apply: the edge must be there."""
    kinds = {a.id: a.kind for a in plan.actions}
    verified = {after for before, after in plan.edges if kinds.get(before) is ActionKind.VERIFY}
    bad = [str(a.target) for a in plan.actions if a.kind is ActionKind.RELEASE_LOCAL and a.id not in verified]
    if not bad:
        return []
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    return [f"refusing {len(bad)} release-local action(s) not preceded by a verify of the S3 copy: {shown}"]
