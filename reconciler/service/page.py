"""What the status page shows, from one snapshot: per tier a stacked bar, actors, datasets, findings, last apply."""

from __future__ import annotations

from typing import Any

from reconciler.apply.history import last_apply
from reconciler.apply.session import managed_s3_stores
from reconciler.manifests.exclusions import KEPT_IN_S3
from reconciler.model import Desired, S3StoreSpec
from reconciler.rules import STATUSES
from reconciler.service.state import Service, ServiceError, Snapshot, dataset_entries
from reconciler.units import human_bytes

LABELS = {"synced": "synced", "local_only": "local only", "s3_only": "S3 only", "out_of_sync": "out of sync"}
MAX_FINDINGS = 200  # the page stays light; the JSON and `pixel plan` list them all


def bar(counts: dict[str, Any]) -> dict[str, Any]:
    """Segments of one stacked bar: width by file count, labelled with count and bytes."""
    total = sum(counts[s]["count"] for s in STATUSES)
    segments = [
        {
            "status": s,
            "label": LABELS[s],
            "count": counts[s]["count"],
            "bytes": human_bytes(counts[s]["bytes"]),
            "percent": round(100 * counts[s]["count"] / total, 2) if total else 0,
        }
        for s in STATUSES
    ]
    return {"total": total, "segments": segments}


def _last_apply(desired: Desired) -> dict[str, Any] | None:
    buckets = [spec for name in managed_s3_stores(desired) if isinstance(spec := desired.stores[name], S3StoreSpec)]
    return last_apply(buckets)


def degraded_context(service: Service) -> dict[str, Any]:
    """The page while S3 is unreachable: a banner saying since when and why, and the actors' counts from their
    manifests on disk (as of the last apply); tiers, datasets and findings need an observation, so none."""
    ws = service.workspace()
    down = service.health.down()
    actors = []
    totals = dict.fromkeys(STATUSES, 0)
    for actor in ws.desired.actors:
        try:
            found = service.training_data(ws.desired, actor) if actor.actor_id.isdigit() else None
        except ServiceError:
            found = None  # a manifest that cannot be read: the row shows none, the API says why
        doc = found[1] if found is not None else None
        counts: dict[str, Any] = {s: {"count": getattr(doc, f"{s}_count") if doc else 0, "bytes": 0} for s in STATUSES}
        for s in STATUSES:
            totals[s] += counts[s]["count"]
        actors.append(
            {
                "id": actor.actor_id,
                "name": actor.actor_name,
                "url": f"/api/actors/{actor.actor_id}/training-data",
                "linked": actor.actor_id.isdigit() and doc is not None,
                "counts": {s: counts[s]["count"] for s in STATUSES},
                "orphans": "–",
                "missing": "–",
                **bar(counts),
            }
        )
    stores = [{"name": name, "since": d.since_iso, "reason": d.reason} for name, d in sorted(down.items())]
    return {
        "degraded": {"since": min((d.since_iso for d in down.values()), default="now"), "stores": stores},
        "tiers": [],
        "actors": actors,
        "datasets": [],
        "findings": [],
        "findings_total": 0,
        "findings_by_kind": {},
        "last_apply": _last_apply(ws.desired),
        "totals": totals,
        "labels": LABELS,
        "statuses": STATUSES,
        "changes": None,
        "errors": [],
    }


def page_context(snap: Snapshot) -> dict[str, Any]:
    status = snap.status
    tiers = []
    for tier in snap.desired.tiers:
        counts = status["tiers"].get(tier.name)
        if counts is None:
            continue
        tiers.append(
            {
                "name": tier.name,
                "where": f"{tier.store}:{tier.prefix}",
                "ownership": tier.ownership.value,
                "protect": tier.protect,
                "objects": counts["objects"]["count"],
                "objects_bytes": human_bytes(counts["objects"]["bytes"]),
                **bar(counts),
            }
        )
    actors = [
        {
            "id": actor_id,
            "name": a["name"],
            "url": f"/api/actors/{actor_id}/training-data",
            "linked": actor_id.isdigit(),
            "counts": {s: a[s]["count"] for s in STATUSES},
            "orphans": a["orphans"],
            "missing": a["missing"],
            # Kept in S3 but out of the manifest and the counts: shown so a smaller total is explained.
            "excluded": len(a.get("excluded", [])),
            "excluded_title": f"{KEPT_IN_S3}: {', '.join(a['excluded'])}" if a.get("excluded") else "",
            **bar(a),
        }
        for actor_id, a in status["actors"].items()
    ]
    findings = sorted(snap.plan.findings, key=lambda f: (f.kind.value, f.key))
    return {
        "degraded": None,
        "tiers": tiers,
        "actors": actors,
        "datasets": dataset_entries(snap),
        "findings": findings[:MAX_FINDINGS],
        "findings_total": len(findings),
        "findings_by_kind": status.get("findings", {}),
        "last_apply": _last_apply(snap.desired),
        "totals": {s: status["totals"][s]["count"] for s in STATUSES},
        "labels": LABELS,
        "statuses": STATUSES,
        "changes": len(snap.plan.actions),
        "errors": list(snap.plan.errors),
    }
