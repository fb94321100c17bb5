"""`pixel status`: the seed's sync-status check as counts, from `rules.manifest_status` like the manifests.

Pure: observed state in, a JSON-ready document out. Per tier (summed over the
mappings whose S3 side lies in it) and per actor: count and bytes of synced,
local_only, s3_only and out_of_sync files, plus orphans and missing images.
"""

from __future__ import annotations

from typing import Any

from reconciler.manifests.final import summary_of
from reconciler.model import ActionKind, Desired, FindingKind, MappingObservation, MappingSpec, Observed, Plan, tier_of
from reconciler.plan.datasets import SCOPE
from reconciler.plan.generated import state_for
from reconciler.rules import STATUSES, manifest_status

_ORGANISE = frozenset({ActionKind.COPY, ActionKind.MOVE, ActionKind.UPLOAD})


def _zero() -> dict[str, dict[str, int]]:
    return {status: {"count": 0, "bytes": 0} for status in STATUSES}


def mapping_counts(
    obs: MappingObservation, mapping: MappingSpec | None = None, owned: frozenset[tuple[str, str]] = frozenset()
) -> dict[str, dict[str, int]]:
    """Files per status; keys the dataset registry owns are the registry's to count, not the mapping's."""
    counts = _zero()
    for rel in obs.local.keys() | obs.remote.keys():
        if rel not in obs.local and mapping is not None and (mapping.s3_store, mapping.remote_key(rel)) in owned:
            continue  # organised there by the registry: not the mapping's S3-only file (the plan agrees)
        local, remote = obs.local.get(rel), obs.remote.get(rel)
        shown = local if local is not None else remote
        assert shown is not None
        slot = counts[manifest_status(local, remote)]
        slot["count"] += 1
        slot["bytes"] += shown.size
    return counts


def _add(into: dict[str, dict[str, int]], more: dict[str, dict[str, int]]) -> None:
    for status, slot in more.items():
        into[status]["count"] += slot["count"]
        into[status]["bytes"] += slot["bytes"]


def _in_tier(desired: Desired, mapping: MappingSpec) -> str | None:
    tier = tier_of(desired.tiers, mapping.s3_store, mapping.s3_prefix)
    return tier.name if tier is not None else None


def status_document(desired: Desired, observed: Observed, plan: Plan | None = None) -> dict[str, Any]:
    empty = MappingObservation({}, {})
    owned = frozenset(
        [(d.store, d.key) for d in desired.datasets]
        + [(d.source.store, d.source.key) for d in desired.datasets if d.source is not None]
    )
    per_mapping = {m.name: mapping_counts(observed.mappings.get(m.name, empty), m, owned) for m in desired.mappings}
    tiers: dict[str, Any] = {}
    for tier in desired.tiers:
        counts = _zero()
        for mapping in desired.mappings:
            if _in_tier(desired, mapping) == tier.name:
                _add(counts, per_mapping[mapping.name])
        objects = observed.tiers.get(tier.name, {})
        tiers[tier.name] = {
            **counts,
            "objects": {"count": len(objects), "bytes": sum(e.size for e in objects.values())},
        }
    actors: dict[str, Any] = {}
    for actor in desired.actors:
        state = state_for(desired, observed, actor)
        excluded = observed.excluded.get(actor.mapping)
        actors[actor.actor_id] = {
            "name": actor.actor_name,
            **per_mapping[actor.mapping],
            "orphans": len(state.orphans),
            "missing": len(state.missing),
            # Out of the manifest and of the counts above, kept in S3 (manifests.exclusions): named, not hidden.
            "excluded": [image.rel for image in excluded.images] if excluded is not None else [],
        }
    actor_mappings = {a.mapping for a in desired.actors}
    mappings = {name: counts for name, counts in per_mapping.items() if name not in actor_mappings}
    totals = _zero()
    for counts in per_mapping.values():
        _add(totals, counts)
    document: dict[str, Any] = {
        "tiers": tiers,
        "actors": actors,
        "mappings": mappings,
        "totals": {
            **totals,
            "orphans": sum(a["orphans"] for a in actors.values()),
            "missing": sum(a["missing"] for a in actors.values()),
            "excluded": sum(len(a["excluded"]) for a in actors.values()),
        },
    }
    if plan is not None:
        # What organising still has to do is the planner's call (it sees uploads that feed a copy): ask it.
        pending = {a.target.key for a in plan.actions if a.mapping == SCOPE and a.kind in _ORGANISE}
        missing = {f.key for f in plan.findings if f.mapping == SCOPE and f.kind is FindingKind.MISSING}
        states = {
            d.name: "pending" if d.key in pending else "missing" if f"{d.store}:{d.key}" in missing else "organised"
            for d in desired.datasets
        }
        document["datasets"] = {
            "organised": sum(1 for v in states.values() if v == "organised"),
            "pending": sum(1 for v in states.values() if v == "pending"),
            "missing": sum(1 for v in states.values() if v == "missing"),
            "by_name": states,
        }
        findings = {kind.value: 0 for kind in FindingKind}
        for finding in plan.findings:
            findings[finding.kind.value] += 1
        document["findings"] = findings
    if desired.final is not None and observed.final is not None:
        document["final_dataset"] = final_status(observed.final.manifest.content, plan)
    return document


def final_status(published: bytes | None, plan: Plan | None) -> dict[str, Any]:
    """The published final dataset's summary, and whether it is current (the plan compiles nothing) and why not."""
    compile_action = next((a for a in plan.actions if a.kind is ActionKind.COMPILE), None) if plan else None
    return {
        "published": summary_of(published),
        "current": published is not None and compile_action is None,
        "rebuild_reason": compile_action.reason if compile_action is not None else None,
    }
