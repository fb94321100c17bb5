"""Seed 002's `S3DatasetLoader` and `load_dataset_from_s3`, on top of pixel's loader.

    from reconciler.loader import S3DatasetLoader, load_dataset_from_s3
    loader = S3DatasetLoader()                       # $PIXEL_SPECS, else the nearest specs/ upward
    datasets = loader.list_datasets(prefix="gdrive/processed/")
    data = load_dataset_from_s3("dataset.json", category="cot_reasoning")

The seed's keys start at the tier roots (`gdrive/processed/...`); a prefix is
tried as given, then below each leading part of a tier's prefix
(`datasets/gdrive/processed/...`), so the seed's scripts work on either layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Unpack

from reconciler.loader.api import DEFAULT_CACHE_LIMIT, DatasetOptions, desired_from, find_specs, load_dataset
from reconciler.loader.dataset import StreamingDataset
from reconciler.loader.formats import format_of
from reconciler.loader.storeset import StoreSet
from reconciler.model import Desired, S3StoreSpec


class S3DatasetLoader:
    def __init__(
        self,
        specs: str | Path | Desired | None = None,
        *,
        cache_dir: str | Path | None = None,
        cache_limit: int | str | None = DEFAULT_CACHE_LIMIT,
        offline: bool = False,
    ) -> None:
        self.desired = desired_from(find_specs() if specs is None else specs)
        self.offline = offline  # never contact S3: read verified cached copies (reconciler/loader/offline.py)
        self.stores = StoreSet(self.desired.stores)
        self.cache_dir = cache_dir
        self.cache_limit = cache_limit

    def _roots(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(store, prefix) pairs to try: the prefix itself, then mounted under each tier's leading parts."""
        seen: set[tuple[str, str]] = set()
        s3 = [name for name, spec in self.desired.stores.items() if isinstance(spec, S3StoreSpec)]
        candidates = [(name, prefix) for name in s3]
        for tier in self.desired.tiers:
            parts = tier.prefix.split("/")
            for i in range(1, len(parts)):
                root = "/".join(parts[:i]) + "/"
                joined = root + prefix
                if joined.startswith(tier.prefix) or tier.prefix.startswith(joined):
                    candidates.append((tier.store, joined))
        for candidate in candidates:
            if candidate not in seen:
                seen.add(candidate)
                yield candidate

    def list_datasets(self, prefix: str = "") -> list[dict[str, Any]]:
        """Every JSON / JSONL object under `prefix`: key, store, size, md5, format."""
        for store, root in self._roots(prefix):
            found = []
            for entry in self.stores[store].list(root):
                try:
                    fmt = format_of(entry.key)
                except ValueError:
                    continue
                found.append({"store": store, "key": entry.key, "size": entry.size, "md5": entry.md5,
                              "format": fmt.value})
            if found:
                return found
        return []

    def stream(
        self, name: str, category: str | None = None, /, **options: Unpack[DatasetOptions]
    ) -> StreamingDataset:
        """The records of `name`, streamed (load_dataset's options apply; `category` may be given either way).

        The loader's cache directory, limit and offline mode are this loader's unless `options` name them.
        """
        if category is not None:
            options.setdefault("category", category)
        options.setdefault("cache_dir", self.cache_dir)
        options.setdefault("cache_limit", self.cache_limit)
        options.setdefault("offline", self.offline)
        return load_dataset(name, self.desired, **options)

    def load_dataset_from_s3(self, name: str, category: str | None = None) -> list[dict[str, Any]]:
        """All records of `name` in a list (the seed's call); for large data iterate `stream()` instead."""
        return list(self.stream(name, category))


def load_dataset_from_s3(
    name: str,
    category: str | None = None,
    /,
    *,
    specs: str | Path | Desired | None = None,
    **options: Unpack[DatasetOptions],
) -> list[dict[str, Any]]:
    """The seed's module-level call; without `specs` they are found as `S3DatasetLoader()` finds them.

    `category` may be given by position or by name, as the seed's scripts do."""
    if category is not None:
        options.setdefault("category", category)
    return list(load_dataset(name, find_specs() if specs is None else specs, **options))
