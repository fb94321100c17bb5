"""What the status page shows, from one snapshot: per tier a stacked bar, actors, datasets, findings, last apply."""

from __future__ import annotations

from typing import Any

from reconciler.apply.history import last_apply
from reconciler.apply.session import managed_s3_stores
from reconciler.model import S3StoreSpec
from reconciler.rules import STATUSES
from reconciler.service.state import Snapshot, dataset_entries
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
            **bar(a),
        }
        for actor_id, a in status["actors"].items()
    ]
    findings = sorted(snap.plan.findings, key=lambda f: (f.kind.value, f.key))
    buckets = [
        spec for name in managed_s3_stores(snap.desired) if isinstance(spec := snap.desired.stores[name], S3StoreSpec)
    ]
    return {
        "tiers": tiers,
        "actors": actors,
        "datasets": dataset_entries(snap),
        "findings": findings[:MAX_FINDINGS],
        "findings_total": len(findings),
        "findings_by_kind": status.get("findings", {}),
        "last_apply": last_apply(buckets),
        "totals": {s: status["totals"][s]["count"] for s in STATUSES},
        "labels": LABELS,
        "statuses": STATUSES,
        "changes": len(snap.plan.actions),
        "errors": list(snap.plan.errors),
    }
