"""Local files hashed into the cache while `pixel apply` waits for its lock.

The lock is held before the observation the plan is built from, and stays so: the plan's own walk of the
local trees, its cache lookups and its S3 listing all come after the lock, as before. What runs while the
lock's request is out only fills the hash cache, and a cached md5 is taken for a file only while the file's
identity (device, inode, size, mtime, ctime) is what it was when hashed: the rule by which a cache warmed by
an earlier run serves this one. A file changed between the warm-up and the plan's walk is read again there.

The warm-up stops as soon as the lock is held or refused, at the next file: it fills time spent waiting on
the server (the lock's PUT, the first write into a bucket SeaweedFS has to grow a volume for, about 0.2 s)
and never delays what follows it. It walks with a store of its own, so the plan's store reports each
unreadable directory once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from reconciler.logs import get_logger
from reconciler.model import Desired, Entry
from reconciler.observe.hashcache import CachedHasher
from reconciler.observe.observer import hash_batches
from reconciler.rules import Selection, mapping_own_space
from reconciler.stores.base import HoldsLocalFiles, Store, StoreError
from reconciler.stores.factory import build_store

# A file is hashed whole once started: a larger one's md5 would outlast the wait it fills, and hold a refused
# apply's error (the lock held by another) behind it. The plan's own hashing reads it.
WARM_MAX_BYTES = 256 * 1024 * 1024


class _Stopped(Exception):
    """The lock was taken: the warm-up ends at the file it was about to read."""


@contextmanager
def hashing_meanwhile(
    desired: Desired, stores: Mapping[str, Store], hasher: CachedHasher, *, workers: int = 4
) -> Iterator[None]:
    """Hash the mappings' local files into `hasher`'s cache until the block ends; then stop and wait for it.

    The files it read count as read in `hasher`, not as cache hits when the plan's walk finds them (a file
    too fresh for the cache to take is read again by the plan, and counted again).
    """
    stop = threading.Event()
    hits_before, remembered_before = hasher.cache_hits, hasher.remembered
    thread = threading.Thread(
        target=_warm, args=(desired, stores, hasher, workers, stop), name="pixel-warmup", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        # The plan's walk asks the cache again and counts what it finds: the warm-up's own hits would be counted
        # twice, and what it read and the cache took would be called served by an earlier run.
        hasher.cache_hits = hits_before - (hasher.remembered - remembered_before)


def _warm(
    desired: Desired, stores: Mapping[str, Store], hasher: CachedHasher, workers: int, stop: threading.Event
) -> None:
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pixel-warmup") as pool:
            for spec in desired.mappings:
                store = stores.get(spec.local_store)
                local_spec = desired.stores.get(spec.local_store)
                if not isinstance(store, HoldsLocalFiles) or local_spec is None:
                    continue
                walker = build_store(local_spec)
                base = spec.local_base
                selection = Selection(spec, mapping_own_space(desired, spec))
                chosen = [
                    entry
                    for _, entry in selection.select(base, _until(stop, walker.list(base)))
                    if entry.md5 is None and entry.size <= WARM_MAX_BYTES
                ]
                answers = hasher.known_many(walker, chosen)
                unknown = [e for e, known in zip(chosen, answers, strict=True) if known is None]
                batches = list(hash_batches(unknown))  # closed at 16 MiB, so big files spread over the workers
                # Largest first, as the plan's hashing would meet them on a tree of a few big files.
                batches.sort(key=lambda batch: -max(e.size for e in batch))
                for future in [pool.submit(_hash_batch, hasher, walker, batch, stop) for batch in batches]:
                    future.result()
    except _Stopped:
        return
    except (OSError, StoreError):
        return  # the plan's walk meets the same trouble and says it
    except Exception as exc:  # an optimisation, never a failure: the plan hashes what is left; stderr stays JSON lines
        get_logger("pixel.observe").warning("hashing while the lock was taken stopped", error=repr(exc))


def _until(stop: threading.Event, entries: Iterable[Entry]) -> Iterator[Entry]:
    for entry in entries:
        if stop.is_set():
            raise _Stopped
        yield entry


def _hash_batch(hasher: CachedHasher, store: Store, batch: list[Entry], stop: threading.Event) -> None:
    for entry in batch:
        if stop.is_set():
            raise _Stopped
        try:
            hasher.md5(store, entry)
        except (OSError, StoreError):
            continue  # unread here, read (or reported) by the plan's own hashing
