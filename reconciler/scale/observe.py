"""`observe.observer.observe`, with each side of each mapping written to the spill as it is listed.

The listing goes through the same `rules.Selection` (globs, min_size, pixel's own space) and the
local files through the same hasher (a cache hit in this thread, a read in the hash pool, a bounded
window of batches in flight), so a spilled side holds exactly the entries the dict would. What stays
in memory is a batch: a side's objects go to SQLite as they come, in whatever order the store lists
them, and come back in key order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from reconciler.model import (
    Authority,
    Desired,
    DiscoveredActor,
    Entry,
    MappingObservation,
    MappingSpec,
    Observed,
    Problem,
)
from reconciler.observe.hashcache import CachedHasher
from reconciler.observe.hashing import Hasher
from reconciler.observe.inventory import ListsFromThePast
from reconciler.observe.observer import BATCH_FILES, ProgressCallback, completed
from reconciler.observe.world import TierKeeper
from reconciler.rules import Selection, mapping_own_space
from reconciler.scale.spill import Spill
from reconciler.stores.base import Store, StoreError


def observe_spilled(
    desired: Desired,
    stores: Mapping[str, Store],
    hasher: Hasher,
    spill: Spill,
    *,
    problems: Iterable[Problem] = (),
    hash_workers: int = 4,
    progress: ProgressCallback | None = None,
    discovered: tuple[DiscoveredActor, ...] = (),
) -> Observed:
    """What `observe()` returns for the same stores, each mapping's sides `SpilledSide`s in `spill`."""
    if isinstance(hasher, CachedHasher):
        # The local walk visits a directory's files together: the cache need hold only that directory's rows.
        hasher.cache.stream_in_key_order()
    result: dict[str, MappingObservation] = {}
    unreadable: list[Problem] = []
    with ThreadPoolExecutor(max_workers=hash_workers, thread_name_prefix="pixel-hash") as pool:
        for spec in desired.mappings:
            result[spec.name] = _observe_mapping(
                desired, stores, spec, hasher, spill, pool, hash_workers, unreadable, progress
            )
            spill.commit()
            if progress:
                obs = result[spec.name]
                progress("listed", len(obs.local) + len(obs.remote))
                progress("hashed", len(obs.local))
    return completed(desired, stores, hasher, result, problems, unreadable, discovered, keep=_spilled_tier(spill))


def _spilled_tier(spill: Spill) -> TierKeeper:
    """Each tier's (and inventoried bucket's) listing written to a side of `spill` as its pages arrive: a tier
    may lie over a whole bucket, and the inventory lists whole buckets.
    A listing that fails raises as the in-memory one does, so no partial tier is ever planned from."""

    def keep(name: str, entries: Iterable[Entry]) -> Mapping[str, Entry]:
        side = spill.side(name)
        side.add_all(entries)
        spill.commit()
        return side

    return keep


def _observe_mapping(
    desired: Desired,
    stores: Mapping[str, Store],
    spec: MappingSpec,
    hasher: Hasher,
    spill: Spill,
    pool: ThreadPoolExecutor,
    hash_workers: int,
    unreadable: list[Problem],
    progress: ProgressCallback | None,
) -> MappingObservation:
    local_store, remote_store = stores[spec.local_store], stores[spec.s3_store]
    own = mapping_own_space(desired, spec)
    select = Selection(spec, own).select
    lbase = spec.local_base
    local = spill.side(f"{spec.name}:local")
    local.add_all(
        _hashed(
            select(lbase, local_store.list(lbase)), local_store, lbase, hasher, pool, hash_workers, unreadable, progress
        )
    )
    remote = spill.side(f"{spec.name}:s3")
    remote.add_all(_relative(select(spec.s3_prefix, remote_store.list(spec.s3_prefix))))
    if spec.authority is Authority.S3 and spec.prune_local and isinstance(remote_store, ListsFromThePast):
        # A local file whose object the report lacks would be deleted: the bucket, not the report, decides.
        absent = [spec.remote_key(rel) for rel in local if rel not in remote]
        remote.add_all(_relative(select(spec.s3_prefix, remote_store.present_now(absent))))
    return MappingObservation(local=local, remote=remote)


def _relative(selected: Iterable[tuple[str, Entry]]) -> Iterator[Entry]:
    for rel, entry in selected:
        etag = entry.etag
        yield Entry(rel, entry.size, entry.md5, entry.mtime_ns, etag)


def _hashed(
    selected: Iterable[tuple[str, Entry]],
    store: Store,
    base: str,
    hasher: Hasher,
    pool: ThreadPoolExecutor,
    workers: int,
    unreadable: list[Problem],
    progress: ProgressCallback | None = None,
) -> Iterator[Entry]:
    """The local entries with their md5s, relative keys; a file that cannot be read is left out, a problem."""

    def md5_or_none(entry: Entry) -> str | None:
        key = base + entry.key
        try:
            md5 = hasher.md5(store, Entry(key, entry.size, None, entry.mtime_ns, entry.etag))
        except (OSError, StoreError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            unreadable.append(Problem(f"{store.name}:{key}", f"cannot read: {why}", store=store.name, key=key))
            return None
        if progress is not None:
            progress("hashed_bytes", entry.size)  # from the hashing threads, as the in-memory observer does
        return md5

    def md5s(batch: list[Entry]) -> list[str | None]:
        return [md5_or_none(e) for e in batch]

    def land(batch: list[Entry], future: Future[list[str | None]]) -> Iterator[Entry]:
        for entry, md5 in zip(batch, future.result(), strict=True):
            if md5 is not None:
                yield Entry(entry.key, entry.size, md5, entry.mtime_ns, entry.etag)

    window: deque[tuple[list[Entry], Future[list[str | None]]]] = deque()
    batch: list[Entry] = []
    for rel, listed in selected:
        entry = Entry(rel, listed.size, listed.md5, listed.mtime_ns, listed.etag)
        if entry.md5 is None:
            known = hasher.known(store, Entry(base + rel, entry.size, None, entry.mtime_ns, entry.etag))
            if known is not None:
                entry = Entry(rel, entry.size, known, entry.mtime_ns, entry.etag)
        if entry.md5 is not None:
            yield entry
            continue
        batch.append(entry)
        if len(batch) >= BATCH_FILES:
            window.append((batch, pool.submit(md5s, batch)))
            batch = []
            if len(window) >= 2 * workers:
                yield from land(*window.popleft())
    if batch:
        window.append((batch, pool.submit(md5s, batch)))
    while window:
        yield from land(*window.popleft())
