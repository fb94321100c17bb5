"""The hash stage alone: md5 of every local file of a tree, through pixel's hash cache.

A whole no-op plan pays the interpreter, imports and the bucket listing whatever
the cache does; this row shows what the cache itself saves. It runs the real
LocalStore listing and CachedHasher over the tree in a fresh process, with the
cache directory given: the first run (cold) reads every file and fills the cache,
the next (warm) should read none.

    python -m bench.hashstage ROOT CACHE_DIR   -> prints JSON {"seconds", "files", "read", "from_cache"}
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reconciler.observe.hashcache import CACHE_FILE, CachedHasher, HashCache
from reconciler.stores.local import LocalStore


def main(root: str, cache_dir: str) -> None:
    start = time.perf_counter()
    store = LocalStore("bench", root)
    hasher = CachedHasher(HashCache(Path(cache_dir) / CACHE_FILE))
    entries = list(store.list(""))
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
