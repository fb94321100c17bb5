"""A verified, content-addressed, size-bounded cache of dataset objects.

An object is cached under its md5 (`objects/ab/abcdef....`), so a copy is only
ever used for the bytes S3 says the object holds *now*: the caller looks the md5
up first (one HEAD) and asks for that md5; an object changed in S3 has another
md5 and is fetched again. Nothing else is trusted: not names, not times.

A miss is fetched once per machine. The process that takes the object's file
lock (the owner) streams it from S3 to its reader and, on the way, into
`{md5}.part` (md5 computed and bytes written by a helper thread, so the reader
is not slowed by them); at the end it checks md5 and size, and a background
thread fsyncs, renames the part to its final name and releases the lock while
the reader goes on (`settle()` waits for that). Records flow before the download
ends. Every other process reading the object meanwhile follows the part file as
it grows instead of downloading it again, and is done when the verified final
file is that same file. If the owner goes away first (killed, or its reader
stopped early), the lock comes free and a follower becomes the owner: it fetches
the object again from the start and hands on only the bytes its reader has not
had yet. A follower whose owner stalls (no byte for STALL_S) reads from S3 on
its own, uncached, rather than wait. No reader ever takes an unverified file for
a cached copy; a killed owner leaves only a part file, which the next owner
replaces.

Size is bounded by evicting the least recently used objects (mtime is touched on
every use) after inserts; an object larger than the bound is streamed uncached.
Eviction unlinks: a reader holding the file open keeps reading.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

from filelock import FileLock

from reconciler.logs import get_logger
from reconciler.stores.base import PermanentStoreError

CHUNK = 1024 * 1024
LOCK_TIMEOUT_S = 600.0  # eviction waits at most this long for another process's eviction
STALL_S = 30.0  # a follower whose owner wrote nothing for this long reads from S3 itself
INLINE_MAX = 4 * CHUNK  # objects up to this size are hashed and written without a helper thread
RESCAN_EVERY = 64  # inserts between two full scans of the cache for eviction (sooner when over the limit)
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


class ObjectCache:
    """Cached copies of objects by md5 under `root`, at most `limit` bytes (None: unbounded)."""

    def __init__(self, root: str | Path, limit: int | str | None = None) -> None:
        self.root = Path(root)
        self.limit = None if limit is None else parse_size(limit)
        self.hits = 0
        self.downloads = 0
        self.followed = 0
        self._estimate: int | None = None  # bytes in the cache as of the last scan plus this process's inserts
        self._inserts = 0
        self._finishing: list[Future[None]] = []
        self._lock = threading.Lock()
        self._made: set[Path] = set()

    def __getstate__(self) -> dict[str, Any]:
        state = {**self.__dict__, "hits": 0, "downloads": 0, "followed": 0, "_estimate": None, "_inserts": 0}
        del state["_finishing"], state["_lock"], state["_made"]  # a DataLoader worker gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _finishing=[], _lock=threading.Lock(), _made=set())

    def path(self, md5: str) -> Path:
        return self.root / "objects" / md5[:2] / md5

    def part_path(self, md5: str) -> Path:
        return self.root / "objects" / md5[:2] / f"{md5}.part"

    def directory(self, path: Path) -> None:
        """mkdir -p, once per directory and process: a thousand small objects paid for it twice each."""
        if path not in self._made:
            path.mkdir(parents=True, exist_ok=True)
            self._made.add(path)

    def lock(self, md5: str) -> FileLock:
        locks = self.root / "locks"
        self.directory(locks)
        # Not a process-wide singleton: two readers of one object in one process are owner and follower.
        return FileLock(str(locks / f"{md5}.lock"), thread_local=False, is_singleton=False)

    def fits(self, size: int | None) -> bool:
        return self.limit is None or (size is not None and size <= self.limit)

    @contextlib.contextmanager
    def open(self, md5: str, size: int | None, fetch: Fetch, *, label: str) -> Iterator[BinaryIO]:
        """The object's bytes: the verified copy, or the object while it is downloaded and verified."""
        hit = self.use(md5)
        if hit is not None:
            with hit:
                yield hit
            return
        reader = _CacheReader(self, md5, size, fetch, label)
        try:
            yield cast(BinaryIO, reader)
        finally:
            reader.close()

    def use(self, md5: str) -> BinaryIO | None:
        """The verified copy of `md5`, opened, or None."""
        final = self.path(md5)
        try:
            handle = open(final, "rb", buffering=0)  # noqa: SIM115  # returned open, closed by the caller
        except FileNotFoundError:
            return None
        with contextlib.suppress(OSError):
            os.utime(final)  # least recently used is by mtime
        self.count("hits")
        return cast(BinaryIO, handle)

    def count(self, counter: Literal["hits", "downloads", "followed"]) -> None:
        # Under the lock: a dataset opens its next object on a helper thread while it reads the current one.
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def finishing(self, done: Future[None]) -> None:
        """A downloaded object being made durable in the background; settle() waits for it."""
        with self._lock:
            self._finishing = [f for f in self._finishing if not f.done()] + [done]

    def settle(self) -> None:
        """Return once every object this process downloaded is in the cache under its final name (or was
        dropped because it could not be written, which is logged): the end of a dataset's iteration."""
        with self._lock:
            pending, self._finishing = self._finishing, []
        for done in pending:
            done.result()

    def inserted(self, final: Path, size: int) -> None:
        if self.limit is None:
            return
        self._inserts += 1
        self._estimate = None if self._estimate is None else self._estimate + size
        if self._estimate is None or self._estimate > self.limit or self._inserts >= RESCAN_EVERY:
            try:
                self.evict(keep=final)
            except OSError as exc:
                get_logger("pixel.loader").warning("cache eviction failed", error=str(exc))

    def evict(self, keep: Path | None = None) -> int:
        """Remove least recently used objects until the cache is within its limit; returns bytes freed."""
        if self.limit is None:
            return 0
        objects = self.root / "objects"
        (self.root / "locks").mkdir(parents=True, exist_ok=True)
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
            self._estimate, self._inserts = total - freed, 0
            return freed


class _Writer:
    """md5 and file writes of the owner's bytes, on a helper thread: both release the GIL for big buffers.

    A small object is written inline: starting a thread and joining it cost more than hashing a few MiB,
    and a shard of 1 MiB is mostly still in flight to the helper when its last record is read.
    """

    def __init__(self, fd: int, size: int | None) -> None:
        self.fd = fd
        self.digest = hashlib.md5()
        self.written = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._thread: threading.Thread | None = None
        if size is None or size > INLINE_MAX:
            self._thread = threading.Thread(target=self._run, name="pixel-cache-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self.error is None:
                self._write(data)

    def _write(self, data: bytes) -> None:
        try:
            self.digest.update(data)
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
            self.written += len(data)
        except BaseException as exc:
            self.error = exc

    def put(self, data: bytes) -> None:
        if self._thread is None:
            if self.error is None:
                self._write(data)
        else:
            self._queue.put(data)

    def finish(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        if self.error is not None:
            raise self.error


_finishing: ThreadPoolExecutor | None = None
_finishing_lock = threading.Lock()


def _finisher() -> ThreadPoolExecutor:
    """One thread for every reader of the process: interpreter exit waits for what it was given."""
    global _finishing
    with _finishing_lock:
        if _finishing is None:
            _finishing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixel-cache-finish")
        return _finishing


def _make_durable(fd: int, part: Path, final: Path, lock: FileLock, cache: ObjectCache, size: int) -> None:
    """fsync, then rename the verified part to its final name, then unlock: no crash leaves a partial final."""
    try:
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        # No fsync of the directory: a rename lost in a crash only means the object is fetched again.
        os.rename(part, final)
    except OSError as exc:
        get_logger("pixel.loader").warning("a downloaded object could not be cached", object=str(final), error=str(exc))
        with contextlib.suppress(OSError):
            part.unlink()
        return
    finally:
        lock.release()
    cache.inserted(final, size)


class _CacheReader(io.RawIOBase):
    """One reader of an object missing from the cache: its owner (downloads), a follower, or on its own."""

    def __init__(self, cache: ObjectCache, md5: str, size: int | None, fetch: Fetch, label: str) -> None:
        self.cache, self.md5, self.size, self.fetch, self.label = cache, md5, size, fetch, label
        self.final = cache.path(md5)
        self.part = cache.part_path(md5)
        cache.directory(self.final.parent)
        self.position = 0  # bytes handed to the reader
        self._lock = cache.lock(md5)
        self._source: contextlib.ExitStack | None = None
        self._stream: BinaryIO | None = None
        self._writer: _Writer | None = None
        self._fd = -1  # the part file being written (owner)
        self._follow: BinaryIO | None = None  # the file being followed (follower)
        self._skip = 0  # bytes to fetch again before handing any on (an owner that was a follower)
        self._owned = False
        self._alone = False  # reading from S3 uncached after a stall
        self._done = False
        self._handed_off = False  # the part file belongs to the background thread that renames it
        if self._try_own():
            return
        cache.count("followed")

    def readable(self) -> bool:
        return True

    # --- becoming the owner ---------------------------------------------------------------------------

    def _try_own(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
        except TimeoutError:
            return False
        if self.final.exists():  # finished by another process since we looked
            self._lock.release()
            return False
        with contextlib.suppress(FileNotFoundError):
            self.part.unlink()  # under the lock: a killed owner's leftover
        self._fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._writer = _Writer(self._fd, self.size)
        self._owned = True
        try:
            self._open_source()
        except BaseException:
            self._release()  # e.g. 412: the object is not that version any more; the next reader may own it
            raise
        self._skip = self.position
        return True

    def _open_source(self) -> None:
        stack = contextlib.ExitStack()
        try:
            self._stream = stack.enter_context(self.fetch())
        except BaseException:
            stack.close()
            raise
        self._source = stack

    def _release(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(BaseException):
                self._writer.finish()
            self._writer = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if not self._handed_off:
            with contextlib.suppress(FileNotFoundError):
                self.part.unlink()
        if self._owned:
            self._owned = False
            self._lock.release()

    def _complete(self) -> None:
        """The owner's end of the object: verify here; fsync, rename and release in the background."""
        writer = self._writer
        assert writer is not None
        writer.finish()
        got = writer.digest.hexdigest()
        if got != self.md5 or (self.size is not None and writer.written != self.size):
            self._writer = None
            self._release()
            raise PermanentStoreError(
                f"{self.label}: downloaded {writer.written} bytes with md5 {got}, expected "
                f"{self.size} bytes with md5 {self.md5}; the copy was discarded",
                code="BadDigest",
            )
        self._writer = None
        # The bytes are verified; making them durable and visible (fsync, rename, unlock) is left to a
        # helper thread so the reader goes on with the next object meanwhile: a thousand 1 MiB shards paid
        # 1.5 ms of fsync each. Until the rename, other readers follow the part file as during the download.
        fd, self._fd, self._owned, self._handed_off = self._fd, -1, False, True
        self.cache.count("downloads")
        self.cache.finishing(
            _finisher().submit(_make_durable, fd, self.part, self.final, self._lock, self.cache, writer.written)
        )
        self._release()

    # --- reading ----------------------------------------------------------------------------------------

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        want = CHUNK if n is None or n < 0 else n
        if self._owned or self._alone:
            return self._read_source(want)
        return self._read_following(want)

    def _read_source(self, want: int) -> bytes:
        assert self._stream is not None
        while True:
            data = self._stream.read(min(self._skip, CHUNK) if self._skip else want)
            if self._writer is not None and data:
                self._writer.put(data)
            if not data:
                if self._owned:
                    self._complete()
                self._done = True
                return b""
            if self._skip:
                if len(data) <= self._skip:
                    self._skip -= len(data)
                    continue
                data = data[self._skip :]
                self._skip = 0
            self.position += len(data)
            return data

    def _read_following(self, want: int) -> bytes:
        idle_since = time.monotonic()
        pause = 0.002
        while True:
            if self._follow is None:
                with contextlib.suppress(FileNotFoundError):
                    self._follow = cast(BinaryIO, open(self.part, "rb", buffering=0))  # noqa: SIM115
            if self._follow is not None:
                fd = self._follow.fileno()
                data = os.pread(fd, want, self.position)
                if data:
                    self.position += len(data)
                    return data
                if self._is_final(fd):
                    self._done = True
                    self.cache.count("hits")
                    return b""
                if self._replaced(fd):
                    self._follow.close()
                    self._follow = None
                    continue
            if self.final.exists() and self._follow is None:
                # Finished and renamed before we opened the part: read the verified file from where we are.
                self._follow = cast(BinaryIO, open(self.final, "rb", buffering=0))  # noqa: SIM115
                continue
            if self._try_own():
                self._close_follow()
                return self._read_source(want)
            if time.monotonic() - idle_since > STALL_S:
                get_logger("pixel.loader").warning("cache owner stalled; reading uncached", object=self.label)
                self._close_follow()
                self._skip = self.position
                self._open_source()
                self._alone = True
                return self._read_source(want)
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _is_final(self, fd: int) -> bool:
        try:
            return os.stat(self.final).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _replaced(self, fd: int) -> bool:
        """The part file was recreated by a new owner (ours came from an owner that went away)."""
        try:
            return os.stat(self.part).st_ino != os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _close_follow(self) -> None:
        if self._follow is not None:
            self._follow.close()
            self._follow = None

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        self._close_follow()
        if self._source is not None:
            self._source.close()
            self._source = None
        self._release()  # an owner stopped early: its part goes, a follower takes over
        super().close()
