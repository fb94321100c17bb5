"""Observe every mapping: list both sides, filter by the mapping's globs, hash local files.

Memory is what bounds the object count (a million objects must plan in well under
a KiB each), so each side is held once, as one dict of relative key -> Entry, and
nothing else grows with the listing: the hash workers pull large files one at a
time from the same list, and strings equal on both sides (the relative key, the md5, the S3 ETag
that is that md5) are one object, not three.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeGuard

from reconciler import collector
from reconciler.model import (
    Authority,
    Desired,
    DiscoveredActor,
    Entry,
    Gap,
    MappingObservation,
    MappingSpec,
    Observed,
    Problem,
)
from reconciler.observe.hashing import Hasher, KnowsMany
from reconciler.observe.world import TierKeeper, in_memory, observe_world
from reconciler.rules import OwnSpace, Selection, mapping_own_space, strip_prefix
from reconciler.stores.base import ListsExpecting, ReportsProblems, Store, StoreError

if TYPE_CHECKING:
    from reconciler.observe.inventory import ListsFromThePast

ProgressCallback = Callable[[str, int], None]

# The streamed observer (scale/observe.py) hands its hash pool batches of this many files.
BATCH_FILES = 128
# Files this large or larger are hashed by the pool's workers, smaller ones by the observing thread (_hash_into).
INLINE_BYTES = 64 * 1024


def _entry(entry: Entry, key: str, size: int, md5: str | None, etag: str | None) -> Entry:
    # Every field of Entry: cheaper than dataclasses.replace, called once per object per side.
    return Entry(key, size, md5, entry.mtime_ns, etag)


def _relative(
    entries: Iterable[Entry],
    base: str,
    spec: MappingSpec,
    own: OwnSpace,
    other: Mapping[str, Entry] | None = None,
) -> dict[str, Entry]:
    """The entries the mapping owns (`rules.Selection`, pixel's own space `own` left out: relative keys) by key
    relative to `base`; equal keys, sizes and md5s shared with `other`'s."""
    twins = other if other is not None else {}
    out: dict[str, Entry] = {}
    # Outside the mapping, or not its file (globs, min_size on either side, pixel's own): left out.
    for rel, entry in Selection(spec, own).select(base, entries):
        size, md5, etag = entry.size, entry.md5, entry.etag
        if md5 is not None:
            # The hash cache's answers are interned too: a local md5 equal to this one is this very string, so
            # `_share_md5s` has nothing to rebuild.
            md5 = sys.intern(md5)
        if etag is not None and etag == md5:
            etag = md5  # a single-part ETag is the md5: one string
        twin = twins.get(rel)
        if twin is not None:
            rel = twin.key
            if twin.size == size:
                size = twin.size
            if md5 is not None and twin.md5 == md5:
                md5 = twin.md5
                if etag == md5:
                    etag = md5
        if rel is entry.key and size is entry.size and md5 is entry.md5 and etag is entry.etag:
            out[rel] = entry  # nothing to change (a mapping of a whole store's root): no copy
        else:
            out[rel] = Entry(rel, size, md5, entry.mtime_ns, etag)
    return out


def _hash_into(
    local: dict[str, Entry],
    remote: Mapping[str, Entry],
    store: Store,
    base: str,
    hasher: Hasher,
    pool: ThreadPoolExecutor,
    workers: int,
    progress: ProgressCallback | None = None,
) -> list[Problem]:
    """Fill in the md5 of every local entry that lacks one, in place, sharing the string with an equal remote md5.

    A file that cannot be read keeps md5 None and comes back as a problem: its content is unknown.
    `progress("hashed_bytes", size)` is called (from the hashing threads) as each file not in the cache is read.
    """
    unreadable: list[Problem] = []

    def md5_or_none(entry: Entry) -> str | None:
        key = base + entry.key
        try:
            md5 = hasher.md5(store, _entry(entry, key, entry.size, entry.md5, entry.etag))
            if progress is not None:
                progress("hashed_bytes", entry.size)
            return md5
        except (OSError, StoreError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            unreadable.append(Problem(f"{store.name}:{key}", f"cannot read: {why}", store=store.name, key=key))
            return None

    def settle(entry: Entry, md5: str) -> None:
        twin = remote.get(entry.key)
        if twin is not None and twin.md5 is not None and twin.md5 == md5:
            md5 = twin.md5  # equal: keep one string
        local[entry.key] = _entry(entry, entry.key, entry.size, md5, entry.etag)

    # Cache hits first, in this thread: a hit is a dict lookup, cheaper than handing it to a worker (10,000
    # hits: 0.11 s here, 0.3 s through the pool), and the cache answers the whole tree at once. Only existing
    # keys are written back, so the dict never changes size.
    pending = [entry for entry in local.values() if entry.md5 is None]
    if isinstance(hasher, KnowsMany):
        answers = hasher.known_many(store, pending, base)  # the cache asked once, not once per file
    else:
        answers = [hasher.known(store, _entry(e, base + e.key, e.size, None, e.etag)) for e in pending]
    unknown: list[Entry] = []
    for entry, known in zip(pending, answers, strict=True):
        if known is None:
            unknown.append(entry)
        else:
            settle(entry, known)

    # Files of INLINE_BYTES or more are pulled by the workers, files under it hashed here meanwhile. A small
    # file is Python work between syscalls, and handing it to a worker cost more than hashing it (GIL
    # hand-offs between the threads: the bench tree's 10,000 small files and 320 MiB hashed in 0.65-0.85 s
    # of wall and 1.06-1.09 s of CPU this way, against 1.13-1.37 s and 1.6-2.0 s as batches over four workers);
    # a large file's read and md5 give up the GIL, so the workers hash them on the other core. Each thread
    # settles what it hashed: only existing keys' values are replaced, one assignment each.
    large = (entry for entry in unknown if entry.size >= INLINE_BYTES)
    taking = threading.Lock()
    stopped = threading.Event()

    def pull() -> None:
        while not stopped.is_set():
            with taking:
                entry = next(large, None)
            if entry is None:
                return
            if (md5 := md5_or_none(entry)) is not None:
                settle(entry, md5)

    anything_large = any(entry.size >= INLINE_BYTES for entry in unknown)
    pullers = [pool.submit(pull) for _ in range(workers)] if anything_large else []
    try:
        for entry in unknown:
            if entry.size < INLINE_BYTES and (md5 := md5_or_none(entry)) is not None:
                settle(entry, md5)
    except BaseException:
        stopped.set()  # an error or Ctrl-C here: the workers stop at their next file
        raise
    finally:
        for puller in pullers:
            puller.result()
    return unreadable


def observe(
    desired: Desired,
    stores: Mapping[str, Store],
    hasher: Hasher,
    *,
    problems: Iterable[Problem] = (),
    hash_workers: int = 4,
    progress: ProgressCallback | None = None,
    discovered: tuple[DiscoveredActor, ...] = (),
) -> Observed:
    """List and hash everything the mappings cover. Each store prefix is listed once per mapping.

    After every mapping is listed, the stores' problems (`ReportsProblems`, LocalStore's) and the extra
    `problems` given are read, and each problem's key becomes a gap in the mappings it lies under.
    `discovered` (the actor directories listed, `observe.world.discover_actors`) is recorded as observed;
    `desired` already holds their mappings, so they are listed here like any other.
    """
    result: dict[str, MappingObservation] = {}
    unreadable: list[Problem] = []
    with ThreadPoolExecutor(max_workers=hash_workers, thread_name_prefix="pixel-hash") as pool:
        for spec in desired.mappings:
            with collector.paused():
                result[spec.name] = _observe_mapping(
                    desired, stores, spec, hasher, pool, hash_workers, progress, unreadable
                )
    return completed(desired, stores, hasher, result, problems, unreadable, discovered)


def completed(
    desired: Desired,
    stores: Mapping[str, Store],
    hasher: Hasher,
    mappings: dict[str, MappingObservation],
    problems: Iterable[Problem],
    unreadable: Iterable[Problem],
    discovered: tuple[DiscoveredActor, ...],
    keep: TierKeeper = in_memory,
) -> Observed:
    """Every mapping observed (in memory or spilled): each one's local gaps from all the problems met (the given
    ones, what the stores report, the files that could not be read), then the world's later parts (the tiers
    kept by `keep`)."""
    reported = (p for store in stores.values() if isinstance(store, ReportsProblems) for p in store.problems)
    found = (*problems, *reported, *unreadable)
    for spec in desired.mappings:
        gaps = local_gaps(spec, found)
        if gaps:
            mappings[spec.name] = dataclasses.replace(mappings[spec.name], local_gaps=gaps)
    # Tiers, dataset sources, generated files and actor orphans: what the later planner passes compare.
    observed = Observed(mappings=mappings, problems=found, discovered=discovered)
    return observe_world(desired, stores, hasher, observed, keep)


def local_gaps(spec: MappingSpec, problems: Iterable[Problem]) -> tuple[Gap, ...]:
    """The parts of the mapping's local tree that problems say were not observed (relative keys)."""
    base = spec.local_base
    gaps: dict[str, Gap] = {}
    for problem in problems:
        if problem.store != spec.local_store:
            continue
        key = problem.key
        if not key or key == spec.local_path or spec.local_path.startswith(key + "/"):
            rel = ""  # the mapping's directory itself, or one above it
        elif (below := strip_prefix(base, key)) is not None:
            rel = below
        else:
            continue
        gaps.setdefault(rel, Gap(rel, problem.message))
    return tuple(gaps[rel] for rel in sorted(gaps))


def _observe_mapping(
    desired: Desired,
    stores: Mapping[str, Store],
    spec: MappingSpec,
    hasher: Hasher,
    pool: ThreadPoolExecutor,
    hash_workers: int,
    progress: ProgressCallback | None,
    unreadable: list[Problem],
) -> MappingObservation:
    local_store = stores[spec.local_store]
    remote_store = stores[spec.s3_store]
    lbase = spec.local_base
    # pixel's own space (lock, scratch, upload records) is never observed as data, whoever listed it.
    own = mapping_own_space(desired, spec)
    walked: Future[dict[str, Entry]] = Future()
    if spec.authority is Authority.LOCAL and isinstance(remote_store, ListsExpecting):
        # Push: the local tree is what S3 should hold, so its keys cut the listing into ranges.
        listed = remote_store.list_expecting(spec.s3_prefix, _remote_keys(walked, spec))
    else:
        listed = remote_store.list(spec.s3_prefix)
    # The S3 listing mostly waits on the network: it starts first, its first page asked while the local tree is
    # walked (the ranges cut at the walked keys follow once they are known), and the local files are hashed (or
    # found in the cache) meanwhile. Reading `local` while the hashing replaces its values is safe (no key is
    # added or removed); md5 strings the two sides could not share on the fly are shared once both are done.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixel-list") as lister:
        listing = lister.submit(_listed_beside_the_walk, listed, walked, spec, own)
        try:
            local = _relative(local_store.list(lbase), lbase, spec, own)
        except BaseException as exc:
            walked.set_exception(exc)  # the listing waiting on the walk stops too
            raise
        walked.set_result(local)
        try:
            failed = _hash_into(local, {}, local_store, lbase, hasher, pool, hash_workers, progress)
        finally:
            remote = listing.result()
    for problem in failed:
        # Unread, its content is unknown: it is a gap (reported, never uploaded or deleted), not an entry.
        local.pop(strip_prefix(lbase, problem.key) or "", None)
    unreadable += failed
    if spec.authority is Authority.S3 and spec.prune_local and _lists_from_the_past(remote_store):
        # A local file whose object the report lacks would be deleted: the bucket, not the report, decides.
        absent = (spec.remote_key(rel) for rel in local if rel not in remote)
        remote.update(_relative(remote_store.present_now(absent), spec.s3_prefix, spec, own, local))
    _share_md5s(local, remote)
    if progress:
        progress("listed", len(local) + len(remote))
        progress("hashed", len(local))
    return MappingObservation(local=local, remote=remote)


def _lists_from_the_past(store: Store) -> TypeGuard[ListsFromThePast]:
    # Imported here: only --observe inventory makes such a store, and a live plan need not load the reader.
    from reconciler.observe.inventory import ListsFromThePast

    return isinstance(store, ListsFromThePast)


def _remote_keys(walked: Future[dict[str, Entry]], spec: MappingSpec) -> Iterator[str]:
    """The keys the walked local tree should have in S3, once walked: read by the listing after its first page."""
    yield from map(spec.remote_key, walked.result())


def _listed_beside_the_walk(
    listed: Iterable[Entry], walked: Future[dict[str, Entry]], spec: MappingSpec, own: OwnSpace
) -> dict[str, Entry]:
    """The listing's entries by relative key, its first page asked before the walk it shares strings with ends."""
    entries = iter(listed)
    first = next(entries, None)
    local = walked.result()
    return _relative(itertools.chain(() if first is None else (first,), entries), spec.s3_prefix, spec, own, local)


def _share_md5s(local: dict[str, Entry], remote: Mapping[str, Entry]) -> None:
    """Equal md5s as one string object on both sides: a million objects save a string each."""
    for key, entry in local.items():
        twin = remote.get(key)
        if twin is not None and twin.md5 is not None and twin.md5 == entry.md5 and twin.md5 is not entry.md5:
            local[key] = _entry(entry, entry.key, entry.size, twin.md5, entry.etag)
