"""s3_manifest.json: seed 000's "complete inventory of all S3 objects" in the buckets the tiers lie in.

Every object of those buckets is listed, pixel's own space (`.pixel/`, the lock's folder) aside: those in a
tier with its tier and category, the rest (`final_dataset/*`, `datasets/local/*`, anything else) with tier
and category null. Counts and bytes per tier and category, outside the tiers, and in all.

The inventory's own copy, where a mapping uploads the file into an inventoried bucket, is left out: listing
it would make every upload of the file change the file, and the next plan upload it again, for ever.

`generated_at` is the apply's clock when anything else in the file changed, and is carried over otherwise:
an inventory that differs only in it is never rewritten, so apply-then-plan stays empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler.manifests.common import dumps, iso_from_ns
from reconciler.model import Desired, Entry, S3StoreSpec, TierSpec, inventoried_stores, tier_of

PIXEL_PREFIX = ".pixel/"  # the lock and scratch keys change on every apply: not inventory
GENERATED_AT = "generated_at"


def category_of(tier: TierSpec, key: str) -> str | None:
    """The first directory below the tier prefix ("categorized by structure"); None for top-level objects."""
    rest = key[len(tier.prefix) :]
    return rest.split("/", 1)[0] if "/" in rest else None


def own_copies(desired: Desired) -> set[tuple[str, str]]:
    """(store, key) of every S3 object a mapping uploads the inventory file itself to."""
    ref = desired.inventory
    if ref is None:
        return set()
    out = set()
    for mapping in desired.mappings:
        if mapping.local_store == ref.store and (rel := mapping.rel_of_local(ref.key)) is not None:
            out.add((mapping.s3_store, mapping.remote_key(rel)))
    return out


def _skipped(spec: S3StoreSpec, key: str) -> bool:
    return key.startswith(PIXEL_PREFIX) or spec.reserves(key)


def inventory_document(
    desired: Desired, buckets: Mapping[str, Mapping[str, Entry]], final: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`buckets`: S3 store -> full key -> entry, every object listed there; `final`: the published final
    dataset's summary (reconciler.manifests.final.summary), when there is one. No `generated_at`."""
    objects: list[dict[str, Any]] = []
    per_tier: dict[str, Any] = {}
    for tier in desired.tiers:
        spec = desired.stores[tier.store]
        assert isinstance(spec, S3StoreSpec)
        per_tier[tier.name] = {
            "bucket": spec.bucket,
            "prefix": tier.prefix,
            "ownership": tier.ownership.value,
            "object_count": 0,
            "total_bytes": 0,
            "categories": {name: {"object_count": 0, "total_bytes": 0} for name in tier.categories},
        }
    outside = {"object_count": 0, "total_bytes": 0}
    skip = own_copies(desired)
    for store in inventoried_stores(desired):
        spec = desired.stores[store]
        assert isinstance(spec, S3StoreSpec)
        listed = buckets.get(store, {})
        for key in sorted(listed):
            if _skipped(spec, key) or (store, key) in skip:
                continue
            entry = listed[key]
            holder = tier_of(desired.tiers, store, key)
            category = category_of(holder, key) if holder is not None else None
            objects.append(
                {
                    "bucket": spec.bucket,
                    "key": key,
                    "tier": holder.name if holder is not None else None,
                    "category": category,
                    "size_bytes": entry.size,
                    "md5": entry.md5,
                }
            )
            if holder is None:
                outside["object_count"] += 1
                outside["total_bytes"] += entry.size
                continue
            slot = per_tier[holder.name]
            slot["object_count"] += 1
            slot["total_bytes"] += entry.size
            if category is not None:
                counts = slot["categories"].setdefault(category, {"object_count": 0, "total_bytes": 0})
                counts["object_count"] += 1
                counts["total_bytes"] += entry.size
    objects.sort(key=lambda o: (o["bucket"], o["key"]))
    totals = {
        "object_count": len(objects),
        "total_bytes": sum(int(o["size_bytes"]) for o in objects),
    }
    document = {"tiers": per_tier, "outside_tiers": outside, "objects": objects, "totals": totals}
    if final is not None:
        document["final_dataset"] = dict(final)
    return document


def _previous_time(previous: bytes | None, document: Mapping[str, Any]) -> str | None:
    """The previous file's `generated_at` when everything else in it is what `document` says now."""
    if previous is None:
        return None
    try:
        old = json.loads(previous)
    except ValueError:
        return None
    if not isinstance(old, dict) or not isinstance(old.get(GENERATED_AT), str):
        return None
    stamp: str = old.pop(GENERATED_AT)
    return stamp if dumps(old) == dumps(document) else None


def render_inventory(
    desired: Desired,
    buckets: Mapping[str, Mapping[str, Entry]],
    final: Mapping[str, Any] | None = None,
    previous: bytes | None = None,
    now_ns: int | None = None,
) -> bytes:
    """The inventory's bytes. `now_ns`: the clock at apply (the planner passes None, and gets the epoch when the
    content changed: its rendering then only has to differ from the file, which it already does)."""
    document = inventory_document(desired, buckets, final)
    stamp = _previous_time(previous, document)
    document[GENERATED_AT] = stamp if stamp is not None else iso_from_ns(now_ns or 0)
    return dumps(document)
