"""Observe every mapping: list both sides, filter by the mapping's globs, hash local files."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from reconciler.globs import matches
from reconciler.model import Desired, Entry, MappingObservation, MappingSpec, Observed, Problem, S3StoreSpec
from reconciler.observe.hashing import Hasher
from reconciler.observe.world import observe_world
from reconciler.stores.base import Store

ProgressCallback = Callable[[str, int], None]


def _relative(entries: Iterable[Entry], base: str, spec: MappingSpec) -> list[Entry]:
    out = []
    for entry in entries:
        rel = entry.key[len(base) :]
        if rel and matches(rel, spec.include, spec.exclude):
            out.append(dataclasses.replace(entry, key=rel))
    return out


def local_base(spec: MappingSpec) -> str:
    return f"{spec.local_path}/" if spec.local_path else ""


def observe(
    desired: Desired,
    stores: Mapping[str, Store],
    hasher: Hasher,
    *,
    problems: Iterable[Problem] = (),
    hash_workers: int = 4,
    progress: ProgressCallback | None = None,
) -> Observed:
    """List and hash everything the mappings cover. Each store prefix is listed once per mapping."""
    result: dict[str, MappingObservation] = {}
    with ThreadPoolExecutor(max_workers=hash_workers, thread_name_prefix="pixel-hash") as pool:
        for spec in desired.mappings:
            local_store = stores[spec.local_store]
            remote_store = stores[spec.s3_store]
            lbase = local_base(spec)
            local = _relative(local_store.list(lbase), lbase, spec)
            # The apply lock is pixel's own bookkeeping, present while apply observes: never data to sync or prune.
            s3_spec = desired.stores.get(spec.s3_store)
            lock_key = s3_spec.lock_key if isinstance(s3_spec, S3StoreSpec) else None
            listed = (e for e in remote_store.list(spec.s3_prefix) if e.key != lock_key)
            remote = _relative(listed, spec.s3_prefix, spec)
            if progress:
                progress("listed", len(local) + len(remote))

            def full(entry: Entry, store: Store = local_store, base: str = lbase) -> Entry:
                if entry.md5 is not None:
                    return entry
                md5 = hasher.md5(store, dataclasses.replace(entry, key=base + entry.key))
                return dataclasses.replace(entry, md5=md5)

            hashed = list(pool.map(full, local))
            if progress:
                progress("hashed", len(hashed))
            result[spec.name] = MappingObservation(
                local={e.key: e for e in hashed},
                remote={e.key: e for e in remote},
            )
    # Tiers, dataset sources, generated files and actor orphans: what the later planner passes compare.
    return observe_world(desired, stores, hasher, Observed(mappings=result, problems=tuple(problems)))
