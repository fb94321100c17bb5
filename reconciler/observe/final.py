"""Observation for the final dataset: the published manifest's bytes, every object beside it, its sources.

The planner decides "current or rebuild, and why" from these alone: the
manifest records the recipe and the sources' md5s it was built from, the
listing shows whether the shards it names are really there, and a HEAD of each
source gives its md5 now.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.model import Desired, Entry, FinalObserved
from reconciler.observe.world import read_generated
from reconciler.stores.base import Store


def observe_final(desired: Desired, stores: Mapping[str, Store]) -> FinalObserved | None:
    final = desired.final
    if final is None:
        return None
    store = stores[final.store]
    objects = {entry.key: entry for entry in store.list(final.prefix)}
    sources: dict[str, Entry | None] = {s.name: stores[s.store].stat(s.key) for s in final.sources}
    return FinalObserved(
        manifest=read_generated(stores, final.manifest),
        objects=objects,
        sources=sources,
        local_manifest=read_generated(stores, final.manifest_local),
    )
