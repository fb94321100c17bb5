"""s3_manifest.json: every object in every tier with size, md5 and category; counts and bytes per tier and category."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.manifests.common import dumps
from reconciler.model import Desired, Entry, S3StoreSpec, TierSpec

PIXEL_PREFIX = ".pixel/"  # the lock and scratch keys change on every apply: not inventory


def category_of(tier: TierSpec, key: str) -> str | None:
    """The first directory below the tier prefix ("categorized by structure"); None for top-level objects."""
    rest = key[len(tier.prefix) :]
    return rest.split("/", 1)[0] if "/" in rest else None


def inventory_document(
    desired: Desired, tiers: Mapping[str, Mapping[str, Entry]], final: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`final`: the published final dataset's summary (reconciler.manifests.final.summary), when there is one."""
    objects: list[dict[str, Any]] = []
    per_tier: dict[str, Any] = {}
    count_all = bytes_all = 0
    for tier in desired.tiers:
        spec = desired.stores[tier.store]
        assert isinstance(spec, S3StoreSpec)
        categories: dict[str, dict[str, int]] = {
            name: {"object_count": 0, "total_bytes": 0} for name in tier.categories
        }
        count = size = 0
        for key in sorted(tiers.get(tier.name, {})):
            if key.startswith(PIXEL_PREFIX) or key[len(tier.prefix) :].startswith(PIXEL_PREFIX):
                continue
            entry = tiers[tier.name][key]
            category = category_of(tier, key)
            objects.append(
                {
                    "bucket": spec.bucket,
                    "key": key,
                    "tier": tier.name,
                    "category": category,
                    "size_bytes": entry.size,
                    "md5": entry.md5,
                }
            )
            count += 1
            size += entry.size
            if category is not None:
                slot = categories.setdefault(category, {"object_count": 0, "total_bytes": 0})
                slot["object_count"] += 1
                slot["total_bytes"] += entry.size
        per_tier[tier.name] = {
            "bucket": spec.bucket,
            "prefix": tier.prefix,
            "ownership": tier.ownership.value,
            "object_count": count,
            "total_bytes": size,
            "categories": categories,
        }
        count_all += count
        bytes_all += size
    objects.sort(key=lambda o: (o["bucket"], o["key"]))
    document = {"tiers": per_tier, "objects": objects, "totals": {"object_count": count_all, "total_bytes": bytes_all}}
    if final is not None:
        document["final_dataset"] = dict(final)
    return document


def render_inventory(
    desired: Desired, tiers: Mapping[str, Mapping[str, Entry]], final: Mapping[str, Any] | None = None
) -> bytes:
    return dumps(inventory_document(desired, tiers, final))
