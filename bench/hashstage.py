"""The hash stage alone: md5 of every local file of a tree, through pixel's hash cache.

A whole no-op plan pays the interpreter, imports and the bucket listing whatever
the cache does; this row shows what the cache itself saves. It runs the real
LocalStore listing and CachedHasher over the tree in a fresh process, with the
cache directory given: the first run (cold) reads every file and fills the cache,
the next (warm) should read none.

The tree is written moments before it is measured, inside the cache's racy window (a file that
new is hashed but not cached), and nothing writes to it while it is measured. So the cache is
given a clock that stands past the window of the tree's newest file: how many files a warm run
reads then depends on the cache, not on how long the machine took to get there.

    python -m bench.hashstage ROOT CACHE_DIR   -> prints JSON {"seconds", "files", "read", "from_cache"}
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reconciler.observe.hashcache import CACHE_FILE, RACY_WINDOW_NS, CachedHasher, HashCache
from reconciler.stores.local import LocalStore


def settled_clock(paths: Iterable[Path], now: Callable[[], int] = time.time_ns) -> Callable[[], int]:
    """`now`, but never earlier than the moment the newest of `paths` leaves the racy window."""
    newest = max((max(st.st_mtime_ns, st.st_ctime_ns) for st in map(os.stat, paths)), default=0)
    return lambda: max(now(), newest + RACY_WINDOW_NS + 1)


def main(root: str, cache_dir: str) -> None:
    clock = settled_clock(path for path in Path(root).rglob("*") if path.is_file())  # not part of the stage
    start = time.perf_counter()
    store = LocalStore("bench", root)
    entries = list(store.list(""))
    hasher = CachedHasher(HashCache(Path(cache_dir) / CACHE_FILE, clock=clock))
    # As observe does it: cache hits inline, the rest by 4 workers in batches of 128 files.
    unknown = [e for e in entries if hasher.known(store, e) is None]
    batches = [unknown[i : i + 128] for i in range(0, len(unknown), 128)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda batch: [hasher.md5(store, e) for e in batch], batches))
    hasher.close()
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {"seconds": seconds, "files": len(entries), "read": hasher.files_read, "from_cache": hasher.cache_hits}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
