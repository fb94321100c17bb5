"""dataset_registry.json: every declared dataset with its canonical S3 path and what is there now."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from reconciler.manifests.common import dumps, s3_uri
from reconciler.model import DatasetSpec, Desired, Entry, ObjectRef, S3StoreSpec

Lookup = Callable[[str, str], Entry | None]  # (store, key) -> the object there, if any


def _source(desired: Desired, dataset: DatasetSpec) -> str | None:
    ref = dataset.source
    if ref is None:
        return None
    spec = desired.stores.get(ref.store)
    return s3_uri(spec, ref.key) if isinstance(spec, S3StoreSpec) else f"{ref.store}:{ref.key}"


def resolves_to(dataset: DatasetSpec, lookup: Lookup) -> tuple[ObjectRef, str] | None:
    """Where a reader finds the dataset now and how: its canonical key, else its source (raw, acquired, a local
    export) until it is organised; None when neither is there."""
    if lookup(dataset.store, dataset.key) is not None:
        return ObjectRef(dataset.store, dataset.key), "canonical"
    if dataset.source is not None and lookup(dataset.source.store, dataset.source.key) is not None:
        return dataset.source, "source"
    return None


def registry_document(desired: Desired, lookup: Lookup) -> dict[str, Any]:
    datasets: dict[str, Any] = {}
    per_category: Counter[str] = Counter()
    present = 0
    total = 0
    for dataset in desired.datasets:
        spec = desired.stores[dataset.store]
        assert isinstance(spec, S3StoreSpec)
        entry = lookup(dataset.store, dataset.key)
        per_category[dataset.category] += 1
        if entry is not None:
            present += 1
            total += entry.size
        datasets[dataset.name] = {
            "s3_path": s3_uri(spec, dataset.key),
            "tier": dataset.tier,
            "category": dataset.category,
            "format": dataset.format,
            "stages": list(dataset.stages),
            "source": _source(desired, dataset),
            "organise": dataset.organise.value,
            "status": "present" if entry is not None else "absent",
            "size_bytes": entry.size if entry is not None else None,
            "md5": entry.md5 if entry is not None else None,
            "object_count": 1 if entry is not None else 0,
        }
    return {
        "datasets": datasets,
        "statistics": {
            "dataset_count": len(desired.datasets),
            "present_count": present,
            "absent_count": len(desired.datasets) - present,
            "total_size_bytes": total,
            "by_category": dict(sorted(per_category.items())),
        },
    }


def render_registry(desired: Desired, lookup: Lookup) -> bytes:
    return dumps(registry_document(desired, lookup))
