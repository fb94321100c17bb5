"""A verified, content-addressed, size-bounded cache of dataset objects.

An object is cached under its md5 (`objects/ab/abcdef....`), so a copy is only
ever used for the bytes S3 says the object holds *now*: the caller looks the md5
up first (one HEAD) and asks for that md5; an object changed in S3 has another
md5 and is fetched again. Nothing else is trusted: not names, not times.

A miss is fetched once per machine. The first process takes the object's file
lock and a background thread downloads into a temp file, checking the md5 as it
writes, then fsync -> rename -> release. Meanwhile its reader follows the temp
file as it grows, so records flow before the download ends; other processes wait
on the lock and then read the finished file. The download never waits for its
reader: a reader paused mid-object (a DataLoader worker whose turn has not come)
cannot hold other processes up for longer than the download takes. A killed
process leaves only a temp file, which the next holder of that lock removes; no
reader ever sees a file that was not verified.

Size is bounded by evicting the least recently used objects (mtime is touched on
every use) after each insert; an object larger than the bound is streamed
uncached. Eviction unlinks: a reader holding the file open keeps reading.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from filelock import FileLock

from reconciler.logs import get_logger
from reconciler.stores.base import PermanentStoreError

CHUNK = 1024 * 1024
LOCK_TIMEOUT_S = 3600.0  # a download of one object by another process: long, but never forever
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40})

Fetch = Callable[[], AbstractContextManager[BinaryIO]]


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as "20GiB", "500 MB", "1024"."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"cache_limit must not be negative, got {value}")
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f'expected a size such as 20GiB or 500MB, got "{value}"')
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])


@dataclass(frozen=True)
class CacheStats:
    hits: int
    downloads: int


class ObjectCache:
    """Cached copies of objects by md5 under `root`, at most `limit` bytes (None: unbounded)."""

    def __init__(self, root: str | Path, limit: int | str | None = None) -> None:
        self.root = Path(root)
        self.limit = None if limit is None else parse_size(limit)
        self.hits = 0
        self.downloads = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "limit": self.limit, "hits": 0, "downloads": 0}

    def path(self, md5: str) -> Path:
        return self.root / "objects" / md5[:2] / md5

    def _lock(self, md5: str) -> FileLock:
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        # Not a process-wide singleton: two readers of one object in one process each take it in turn.
        return FileLock(str(locks / f"{md5}.lock"), timeout=LOCK_TIMEOUT_S, thread_local=False, is_singleton=False)

    def fits(self, size: int | None) -> bool:
        return self.limit is None or (size is not None and size <= self.limit)

    @contextlib.contextmanager
    def open(self, md5: str, size: int | None, fetch: Fetch, *, label: str) -> Iterator[BinaryIO]:
        """The object's bytes: the verified copy, or the object itself while it is downloaded and verified."""
        final = self.path(md5)
        hit = self._use(final)
        if hit is not None:
            with hit:
                yield hit
            return
        lock = self._lock(md5)
        lock.acquire()
        try:
            hit = self._use(final)  # another process finished it while this one waited
        except BaseException:
            lock.release()
            raise
        if hit is not None:
            lock.release()
            with hit:
                yield hit
            return
        download = _Download(self, md5, size, fetch, lock, label)
        reader = download.start()
        try:
            yield reader
        finally:
            reader.close()

    def _use(self, final: Path) -> BinaryIO | None:
        try:
            handle = open(final, "rb", buffering=0)  # noqa: SIM115  # returned open, closed by the caller
        except FileNotFoundError:
            return None
        with contextlib.suppress(OSError):
            os.utime(final)  # least recently used is by mtime
        self.hits += 1
        return handle

    def evict(self, keep: Path | None = None) -> int:
        """Remove least recently used objects until the cache is within its limit; returns bytes freed."""
        if self.limit is None:
            return 0
        objects = self.root / "objects"
        with FileLock(str(self.root / "locks" / "evict.lock"), timeout=LOCK_TIMEOUT_S, is_singleton=False):
            files: list[tuple[int, int, Path]] = []
            for directory in objects.glob("??"):
                for path in directory.iterdir():
                    if path.name.endswith(".part"):
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        st = path.stat()
                        files.append((st.st_mtime_ns, st.st_size, path))
            total = sum(size for _, size, _ in files)
            freed = 0
            for _, size, path in sorted(files):
                if total - freed <= self.limit:
                    break
                if path == keep:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    freed += size
            return freed


class _Download:
    """One object fetched into the cache by a background thread, readable while it is written."""

    def __init__(self, cache: ObjectCache, md5: str, size: int | None, fetch: Fetch, lock: FileLock, label: str):
        self.cache, self.md5, self.size, self.fetch, self.lock, self.label = cache, md5, size, fetch, lock, label
        self.final = cache.path(md5)
        self.temp = self.final.with_name(f"{md5}.{os.getpid()}.{secrets.token_hex(4)}.part")
        self.written = 0
        self.done = False
        self.error: BaseException | None = None
        self.changed = threading.Condition()

    def start(self) -> BinaryIO:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        # Under the lock nobody else writes this object: any temp file of it is a killed process's leftover.
        for stale in self.final.parent.glob(f"{self.md5}.*.part"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        handle = open(self.temp, "rb", buffering=0)  # noqa: SIM115  # closed by the follower
        reader = cast(BinaryIO, _Follower(self, handle))
        threading.Thread(target=self._run, args=(fd,), name=f"pixel-cache-{self.md5[:8]}", daemon=True).start()
        self.cache.downloads += 1
        return reader

    def _run(self, fd: int) -> None:
        try:
            digest = hashlib.md5()
            with self.fetch() as source:
                while data := source.read(CHUNK):
                    digest.update(data)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    with self.changed:
                        self.written += len(data)
                        self.changed.notify_all()
            if digest.hexdigest() != self.md5 or (self.size is not None and self.written != self.size):
                raise PermanentStoreError(
                    f"{self.label}: downloaded {self.written} bytes with md5 {digest.hexdigest()}, expected "
                    f"{self.size} bytes with md5 {self.md5}; the copy was discarded",
                    code="BadDigest",
                )
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(self.temp, self.final)
            _fsync_dir(self.final.parent)
        except BaseException as exc:
            self.error = exc
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                self.temp.unlink()
        finally:
            self.lock.release()
            with self.changed:
                self.done = True
                self.changed.notify_all()
        if self.error is None:
            try:
                self.cache.evict(keep=self.final)
            except OSError as exc:
                get_logger("pixel.loader").warning("cache eviction failed", error=str(exc))


class _Follower(io.RawIOBase):
    """Reads a download's temp file as it grows; raises the download's error instead of a short read."""

    def __init__(self, download: _Download, handle: BinaryIO) -> None:
        self._download = download
        self._handle = handle
        self._position = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        d = self._download
        with d.changed:
            while self._position >= d.written and not d.done:
                d.changed.wait()
            if d.error is not None:
                raise d.error
            available = d.written - self._position
        if available <= 0:
            return b""
        want = available if n is None or n < 0 else min(n, available)
        data = os.pread(self._handle.fileno(), want, self._position)
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
