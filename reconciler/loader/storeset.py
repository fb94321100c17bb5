"""The stores a dataset reads from, built from their specs on first use in each process.

A DataLoader pickles the dataset into every worker process; a boto3 client cannot
be pickled and should not be shared across a fork anyway. So the dataset carries
the store specs and each process opens its own stores when it first reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.model import StoreSpec
from reconciler.stores.base import Store
from reconciler.stores.factory import build_store

# A dataset's reads in one process: the prefetching readers plus a listing, not an apply's hundreds of requests.
READ_PARALLELISM = 8


class StoreSet(Mapping[str, Store]):
    def __init__(self, specs: Mapping[str, StoreSpec]) -> None:
        self.specs = dict(specs)
        self._open: dict[str, Store] = {}

    def __getitem__(self, name: str) -> Store:
        store = self._open.get(name)
        if store is None:
            store = self._open[name] = build_store(self.specs[name], parallelism=READ_PARALLELISM)
        return store

    def __iter__(self) -> Iterator[str]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __getstate__(self) -> dict[str, Any]:
        return {"specs": self.specs, "_open": {}}
