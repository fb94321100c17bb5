"""dataset_registry.json: every declared dataset with its canonical S3 path and what is there now.

The registry is also edited by people (seed 002's update_manifest_s3_paths.py *updates* it): pixel owns the
fields it writes for the datasets it declares and the statistics; every other top-level key, every entry it
does not declare and every field it does not write are kept as they were written, in the order they were
written, and reported as unmanaged (`unmanaged_parts`). Keys new to the file come after the kept ones, in
sorted order, so a registry nobody edited is byte-identical to the fully sorted rendering.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.manifests.common import dumps, previous_document, s3_uri
from reconciler.manifests.record_index import FIELD, INDEXED_FORMATS, index_key, registry_field
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
        # Present only once apply has written the object's record index: a registry without indexes stays as
        # it was, and the field's absence tells the loader to count the records itself.
        if entry is not None and entry.md5 is not None and dataset.format in INDEXED_FORMATS:
            key = index_key(entry.md5, dataset.format)
            record = registry_field(s3_uri(spec, key), lookup(dataset.store, key))
            if record is not None:
                datasets[dataset.name][FIELD] = record
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


OWNED_TOP = ("datasets", "statistics")


def unreadable(previous: bytes | None) -> bool:
    """The registry is there but is not a JSON object (a hand edit half done): pixel cannot merge into it, and
    rewriting it would lose what was written, so it is left alone until someone fixes or deletes it."""
    return previous is not None and previous_document(previous) is None


def _merged(previous: object, owned: Mapping[str, Any]) -> dict[str, Any]:
    """`owned`'s values over `previous`'s keys in their written order; keys new to the file after them, sorted."""
    out: dict[str, Any] = {}
    if isinstance(previous, dict):
        for key, value in previous.items():
            out[key] = owned.get(key, value)
    for key in sorted(owned):
        if key not in out:
            out[key] = owned[key]
    return out


def merged_document(desired: Desired, lookup: Lookup, previous: bytes | None) -> dict[str, Any]:
    """The registry pixel renders, merged into what the file holds now (see the module docstring)."""
    ours = registry_document(desired, lookup)
    old = previous_document(previous)
    if old is None:
        sorted_document: dict[str, Any] = json.loads(dumps(ours))
        return sorted_document
    old_datasets = old.get("datasets")
    datasets: dict[str, Any] = {}
    if isinstance(old_datasets, dict):
        for name, entry in old_datasets.items():
            declared = ours["datasets"].get(name)
            if declared is not None and isinstance(entry, dict) and FIELD not in declared:
                # pixel's field even when it has nothing to say: an index for bytes no longer there must go.
                entry = {k: v for k, v in entry.items() if k != FIELD}
            datasets[name] = entry if declared is None else _merged(entry, declared)
    for name in sorted(ours["datasets"]):
        if name not in datasets:
            datasets[name] = _merged(None, ours["datasets"][name])
    owned = {"datasets": datasets, "statistics": _merged(old.get("statistics"), ours["statistics"])}
    return _merged(old, owned)


def _pointer(*parts: str) -> str:
    """An RFC 6901 JSON pointer: a key with "/" or "~" in it still names one place."""
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def unmanaged_parts(desired: Desired, previous: bytes | None) -> list[tuple[str, str]]:
    """(JSON pointer, what it is) for everything in the registry file that pixel keeps but does not write."""
    old = previous_document(previous)
    if old is None:
        return []
    declared = {d.name for d in desired.datasets}
    ours = registry_document(desired, lambda store, key: None)
    found = [(_pointer(key), "top-level key pixel does not write") for key in old if key not in OWNED_TOP]
    statistics = old.get("statistics")
    if isinstance(statistics, dict):
        found += [
            (_pointer("statistics", key), "statistic pixel does not write")
            for key in statistics
            if key not in ours["statistics"]
        ]
    datasets = old.get("datasets")
    if isinstance(datasets, dict):
        fields = {field for entry in ours["datasets"].values() for field in entry} | {FIELD}
        for name, entry in datasets.items():
            if name not in declared:
                found.append((_pointer("datasets", name), "dataset entry no spec declares"))
            elif isinstance(entry, dict):
                found += [
                    (_pointer("datasets", name, field), "field pixel does not write")
                    for field in entry
                    if field not in fields
                ]
    return found


def render_registry(desired: Desired, lookup: Lookup, previous: bytes | None = None) -> bytes:
    """The registry's bytes: pixel's fields merged into `previous` (the file as it is now), keys not re-sorted."""
    document = merged_document(desired, lookup, previous)
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
