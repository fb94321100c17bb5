"""A local file an upload reads, vouching for its md5 from the hash cache so the upload need not hash it again.

The plan's md5 of a big file is trusted for exactly the version the hash cache holds it for: the cache keeps
an md5 only for a file identity (device, inode, size, mtime, ctime) that was not racy when it was hashed
(observe/hashcache.py), so no same-identity edit can have followed. An md5 that only a plan says (a fresh
hash of a file still being written, or a saved plan edited by hand) is not vouched for: the upload then
hashes the bytes it sends, as before. The identity is read again after the upload's last read; an edit in
between moves ctime, and the upload is refused.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from reconciler.observe.hashcache import FileKey, HashCache


class CachedMd5s:
    """The hash cache's md5 of a file identity, the cache opened by the first upload that asks (a run without
    a big upload never opens it) and shared by the runner's threads: a directory's rows are read once."""

    def __init__(self, cache: Callable[[], HashCache] = HashCache) -> None:
        self._open = cache
        self._cache: HashCache | None = None
        self._lock = threading.Lock()

    def __call__(self, key: FileKey) -> str | None:
        with self._lock:
            if self._cache is None:
                self._cache = self._open()
            cache = self._cache
        return cache.lookup(key)  # read only: nothing to flush, so never closed but by the collector


class VouchingFile:
    """`stream` (a file of `path`), answering stores.s3.upload.VouchedSource for `md5` from `known`."""

    def __init__(self, stream: BinaryIO, path: str, md5: str, known: Callable[[FileKey], str | None]) -> None:
        self._stream = stream
        self._path = path
        self._md5 = md5
        self._known = known
        self._vouched: FileKey | None = None  # the identity first vouched for; later answers need it unchanged

    def vouched_md5(self) -> str | None:
        try:
            now = FileKey.of(self._path, os.fstat(self._stream.fileno()))
        except (OSError, ValueError):  # no descriptor, or closed: nothing to vouch with
            return None
        if self._vouched is None:
            if self._known(now) != self._md5:
                return None
            self._vouched = now
        return self._md5 if now == self._vouched else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
