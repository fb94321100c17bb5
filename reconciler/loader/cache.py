"""A verified, content-addressed, size-bounded cache of dataset objects.

An object is cached under its md5 (`objects/ab/abcdef....`), so a copy is only
ever used for the bytes S3 says the object holds *now*: the caller looks the md5
up first (one HEAD) and asks for that md5; an object changed in S3 has another
md5 and is fetched again. Nothing else is trusted: not names, not times.

No byte is handed to a reader before it is verified. A miss is fetched once per
machine: the process that takes the object's file lock (the owner) downloads it
into a part file of its own (a unique name: no other download ever writes or
renames it; md5 and writes on a helper thread for big objects), checks md5 and
size, and only then serves its reader from that file; a background thread
fsyncs it, renames it to its final name, records the file's identity beside it
(`records/ab/{md5}`: size, mtime_ns, ctime_ns, inode, device) and releases the lock
(`settle()` waits for that). Every other process reading the object meanwhile
waits for the verified final file instead of downloading it again. If the owner
goes away first (killed, or its reader stopped early) the lock comes free and a
waiting reader becomes the owner. A reader whose owner stalls (its part file
has not grown for STALL_S) downloads and verifies a private copy rather than
wait. A killed owner leaves only a part file, which the next owner removes.

A caller that verifies what it hands on by other means (a lone reader checking
each span of an indexed object against the index) fills the cache with `fill()`
instead: the same lock, part file and durable finish, no byte served from it.
The whole is checked against the md5 before it becomes the cached copy, unless
the caller vouches for every byte (`vouched=True`: each span matched its md5 in
an index of that md5, and the spans tile the object), so the object is not hashed
a second time on the way in.

A hit is checked every time: the file is opened without following symlinks (a
symlink is refused) and its stat must be the identity recorded at write; if it
is not (edited, truncated, replaced, or written by an older pixel), or the cache
was made with verify="always", the whole file is hashed, and a copy whose md5
is wrong is dropped and fetched again. The identity includes ctime, which no
write or utime can put back.

Size is bounded by evicting the least recently used objects (the mtime of the
object's record is touched on every use, not the object's: touching the object
would move its ctime) after inserts; an object larger than the bound is read
uncached (reconciler/loader/verify.py). Eviction unlinks: a reader holding the
file open keeps reading.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import queue
import secrets
import stat
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
from reconciler.units import parse_size

CHUNK = 1024 * 1024
WAIT_PAUSE_S = 0.05  # how often a reader waiting for another process's download looks again (at most)
LOCK_TIMEOUT_S = 600.0  # eviction waits at most this long for another process's eviction
STALL_S = 30.0  # a reader whose owner wrote nothing for this long downloads a private copy
INLINE_MAX = 4 * CHUNK  # objects up to this size are hashed and written without a helper thread
# A big object's writer flushes what it wrote to disk every this many bytes, while the download goes on: the
# fsync that makes the copy durable then has little left, where it held the end of a 1 GiB pass for seconds.
SYNC_EVERY = 64 * CHUNK
RESCAN_EVERY = 64  # inserts between two full scans of the cache for eviction (sooner when over the limit)
Fetch = Callable[[], AbstractContextManager[BinaryIO]]
Verify = Literal["stat", "always"]
_PART = ".part"


class ObjectCache:
    """Cached copies of objects by md5 under `root`, at most `limit` bytes (None: unbounded)."""

    def __init__(self, root: str | Path, limit: int | str | None = None, *, verify: Verify = "stat") -> None:
        if verify not in ("stat", "always"):
            raise ValueError(f'verify must be "stat" or "always", got {verify!r}')
        self.root = Path(root)
        self.limit = None if limit is None else parse_size(limit)
        self.verify: Verify = verify
        self.hits = 0
        self.downloads = 0
        self.followed = 0
        self.rehashed = 0  # hits whose stat did not match (or verify="always"): hashed whole
        self.dropped = 0  # hits whose bytes were not the md5: removed and fetched again
        self._estimate: int | None = None  # bytes in the cache as of the last scan plus this process's inserts
        self._inserts = 0
        self._finishing: list[Future[None]] = []
        self._lock = threading.Lock()
        self._made: set[Path] = set()

    def __getstate__(self) -> dict[str, Any]:
        state = {**self.__dict__, "hits": 0, "downloads": 0, "followed": 0, "rehashed": 0, "dropped": 0,
                 "_estimate": None, "_inserts": 0}
        del state["_finishing"], state["_lock"], state["_made"]  # a DataLoader worker gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _finishing=[], _lock=threading.Lock(), _made=set())

    def path(self, md5: str) -> Path:
        return Path(self._file("objects", md5))

    def record_path(self, md5: str) -> Path:
        return Path(self._file("records", md5))

    def new_part_path(self, md5: str) -> Path:
        """A part file no other download can have: each writes and renames only its own."""
        return self.root / "objects" / md5[:2] / f"{md5}.{os.getpid()}-{secrets.token_hex(6)}{_PART}"

    def parts(self, md5: str) -> list[Path]:
        """The part files of downloads of `md5` (running, or left by killed owners)."""
        directory = self.root / "objects" / md5[:2]
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        return [directory / n for n in names if n.startswith(f"{md5}.") and n.endswith(_PART)]

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
        """The object's verified bytes: the checked copy, or the object once downloaded and verified."""
        hit = self.use(md5, size, label=label)
        if hit is not None:
            with hit:
                yield hit
            return
        reader = _CacheReader(self, md5, size, fetch, label)
        try:
            yield cast(BinaryIO, reader)
        finally:
            reader.close()

    def fill(self, md5: str, size: int, *, label: str, vouched: bool = False) -> Filling | None:
        """This process's download of `md5`, written into the cache as it is read (Filling), or None when another
        process is downloading it or its copy is there: the caller then reads it another way. `vouched`: the
        caller has checked every byte it writes against digests that make up `md5` (its size is still checked)."""
        self.directory(self.path(md5).parent)
        lock = self.lock(md5)
        try:
            lock.acquire(timeout=0)
        except TimeoutError:
            return None
        if self.has(md5):
            lock.release()
            return None
        try:
            return Filling(self, md5, size, lock, label, vouched=vouched)
        except BaseException:
            lock.release()
            raise

    def _file(self, kind: Literal["objects", "records"], md5: str) -> str:
        """path() or record_path() as a string: a warm pass over 1,000 shards built each Path several times, a
        sixth of its opening of cached copies."""
        return f"{os.fspath(self.root)}/{kind}/{md5[:2]}/{md5}"

    def has(self, md5: str) -> bool:
        """A copy is there (not yet checked: use() checks it)."""
        return os.path.lexists(self._file("objects", md5))

    def use(self, md5: str, size: int | None = None, *, label: str = "") -> BinaryIO | None:
        """The checked copy of `md5`, opened at its start, or None (absent, or dropped as not verified)."""
        try:
            fd = os.open(self._file("objects", md5), os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:  # ELOOP: a symlink put in the cache's place; never followed
            self._drop(self.path(md5), None, label or md5, f"not a regular file ({exc.strerror})")
            return None
        handle = cast(BinaryIO, open(fd, "rb", buffering=0))  # noqa: SIM115  # returned open, closed by the caller
        try:
            checked = self._check(handle, md5, size, label or md5)
        except BaseException:
            handle.close()
            raise
        if not checked:
            handle.close()
            return None
        with contextlib.suppress(OSError):
            os.utime(self._file("records", md5))  # least recently used is by the record's mtime
        self.count("hits")
        return handle

    def _check(self, handle: BinaryIO, md5: str, size: int | None, label: str) -> bool:
        """Is the opened copy the verified bytes? The recorded identity, else (or always) the md5 of it all."""
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            self._drop(self.path(md5), st, label, "not a regular file")
            return False
        if size is not None and st.st_size != size:
            self._drop(self.path(md5), st, label, f"{st.st_size} bytes, the object has {size}")
            return False
        if self.verify == "stat" and self._recorded(md5) == _identity(st):
            return True
        self.count("rehashed")
        digest = hashlib.md5()
        while data := handle.read(CHUNK):
            digest.update(data)
        handle.seek(0)
        if digest.hexdigest() != md5:
            self._drop(self.path(md5), st, label, f"its bytes hash to {digest.hexdigest()}")
            return False
        self._record(md5, st)  # verified whole: its identity now is what the next hit checks
        return True

    def _recorded(self, md5: str) -> list[int] | None:
        try:
            with open(self._file("records", md5), "rb") as record:
                value = json.loads(record.read())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, list) else None

    def _record(self, md5: str, st: os.stat_result) -> None:
        """Write the identity of a verified copy beside it (atomically: a torn record is no record)."""
        record = self.record_path(md5)
        temp = record.with_name(f"{record.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp")
        try:
            self.directory(record.parent)
            temp.write_bytes(json.dumps(_identity(st)).encode())
            os.replace(temp, record)
        except OSError as exc:
            get_logger("pixel.loader").warning("cache record not written", object=md5, error=str(exc))
            with contextlib.suppress(OSError):
                temp.unlink()

    def _drop(self, final: Path, st: os.stat_result | None, label: str, why: str) -> None:
        """Remove a copy that failed its check (only that file: not one a new owner has put there since)."""
        get_logger("pixel.loader").warning("cached copy failed its check; dropped, fetching again",
                                           object=label, reason=why)
        self.count("dropped")
        with contextlib.suppress(OSError):
            now = os.lstat(final)
            if st is None or (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                final.unlink()
                self.record_path(final.name).unlink(missing_ok=True)

    def count(self, counter: Literal["hits", "downloads", "followed", "rehashed", "dropped"]) -> None:
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
                    if path.name.endswith(_PART):
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        st = path.lstat()
                        record = self.record_path(path.name)
                        try:
                            used = record.stat().st_mtime_ns
                        except FileNotFoundError:
                            used = st.st_mtime_ns
                        files.append((used, st.st_size, path))
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
                with contextlib.suppress(FileNotFoundError):
                    self.record_path(path.name).unlink()
            self._estimate, self._inserts = total - freed, 0
            return freed


class _Writer:
    """md5 and file writes of the owner's bytes, on a helper thread: both release the GIL for big buffers.

    A small object is written inline: starting a thread and joining it cost more than hashing a few MiB,
    and a shard of 1 MiB is mostly still in flight to the helper when its last record is read.
    """

    def __init__(self, fd: int, size: int | None, *, hashing: bool = True) -> None:
        self.fd = fd
        self.digest = hashlib.md5()
        self._hashing = hashing
        self.written = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._thread: threading.Thread | None = None
        if size is None or size > INLINE_MAX:
            self._thread = threading.Thread(target=self._run, name="pixel-cache-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        unsynced = 0
        while (data := self._queue.get()) is not None:
            if self.error is None:
                self._write(data)
                unsynced += len(data)
                if unsynced >= SYNC_EVERY:
                    unsynced = 0
                    # Only to spread the disk's work: the fsync before the rename still decides durability.
                    with contextlib.suppress(OSError):
                        _datasync(self.fd)

    def _write(self, data: bytes) -> None:
        try:
            if self._hashing:
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


def _datasync(fd: int) -> None:
    (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(fd)  # macOS has no fdatasync


_finishing: ThreadPoolExecutor | None = None
_finishing_lock = threading.Lock()


def _finisher() -> ThreadPoolExecutor:
    """One thread for every reader of the process: interpreter exit waits for what it was given."""
    global _finishing
    with _finishing_lock:
        if _finishing is None:
            _finishing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixel-cache-finish")
        return _finishing


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _make_durable(fd: int, part: Path, md5: str, lock: FileLock, cache: ObjectCache, size: int) -> None:
    """fsync, rename the verified part to its final name, record its identity, then unlock.

    fsync first: no crash leaves a final name on bytes not on disk. The rename moves this download's own
    part (its name is unique); if that name no longer holds our file (the cache was cleared meanwhile),
    nothing is renamed."""
    final = cache.path(md5)
    mine = os.fstat(fd)
    try:
        try:
            os.fsync(fd)
            there = os.lstat(part)
            if (there.st_ino, there.st_dev) != (mine.st_ino, mine.st_dev):
                raise FileNotFoundError(f"{part} is no longer this download's file")
            # No fsync of the directory: a rename lost in a crash only means the object is fetched again.
            os.rename(part, final)
            cache._record(md5, os.fstat(fd))  # after the rename, which moves ctime
        finally:
            os.close(fd)
    except OSError as exc:
        get_logger("pixel.loader").warning("a downloaded object could not be cached", object=str(final), error=str(exc))
        with contextlib.suppress(OSError):
            there = os.lstat(part)
            if (there.st_ino, there.st_dev) == (mine.st_ino, mine.st_dev):
                part.unlink()
        return
    finally:
        lock.release()
    cache.inserted(final, size)


class Filling:
    """An owner's download written into its part file as the caller reads it, with no byte served from here.

    For a caller that verifies what it hands on by other means (the spans of an indexed object, each against its
    own md5): once every byte is written, the whole is checked against the object's md5 (unless the caller
    vouched for every byte) and size and becomes the cached copy (durable, renamed and recorded on the finishing
    thread, as a _CacheReader's download); anything else leaves no file behind."""

    def __init__(
        self, cache: ObjectCache, md5: str, size: int, lock: FileLock, label: str, *, vouched: bool = False
    ) -> None:
        self.cache, self.md5, self.size, self.label, self.vouched = cache, md5, size, label, vouched
        self._lock: FileLock | None = lock
        for stale in cache.parts(md5):  # under the lock: left by killed owners
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        self._part = cache.new_part_path(md5)
        self._fd = os.open(self._part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._writer = _Writer(self._fd, size, hashing=not vouched)

    def write(self, data: bytes) -> None:
        self._writer.put(data)

    def done(self) -> None:
        """Every byte written: the cached copy once it hashes to the md5 (else discarded, and BadDigest)."""
        try:
            self._writer.finish()
        except BaseException:
            self.abort()
            raise
        got = self.md5 if self.vouched else self._writer.digest.hexdigest()
        if got != self.md5 or self._writer.written != self.size:
            self.abort()
            raise PermanentStoreError(
                f"{self.label}: {self._writer.written} bytes with md5 {got} were read, expected {self.size} bytes "
                f"with md5 {self.md5}; the copy was discarded",
                code="BadDigest",
            )
        lock, self._lock = self._lock, None
        assert lock is not None
        self.cache.count("downloads")
        self.cache.finishing(_finisher().submit(_make_durable, self._fd, self._part, self.md5, lock, self.cache,
                                                self.size))

    def abort(self) -> None:
        """Stopped before done (or not verified): the part file removed, the lock free for the next reader."""
        if self._lock is None:
            return
        with contextlib.suppress(BaseException):
            self._writer.finish()
        os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):
            self._part.unlink()
        lock, self._lock = self._lock, None
        lock.release()


class _CacheReader(io.RawIOBase):
    """One reader of an object missing from the cache: its owner (downloads), a waiter, or on its own.

    Nothing is handed on before the whole object is verified: the first read() downloads (or waits for
    the verified copy), every read serves from a file whose bytes hashed to the md5.
    """

    def __init__(self, cache: ObjectCache, md5: str, size: int | None, fetch: Fetch, label: str) -> None:
        self.cache, self.md5, self.size, self.fetch, self.label = cache, md5, size, fetch, label
        cache.directory(cache.path(md5).parent)
        self._lock = cache.lock(md5)
        self._source: contextlib.ExitStack | None = None
        self._stream: BinaryIO | None = None
        self._verified: BinaryIO | None = None  # what read() serves, once there
        self._owned = False
        self._handed_off = False
        # Owning is tried now, and the GET sent: a refused precondition (412) shows when the object is opened.
        if not self._try_own():
            cache.count("followed")

    def readable(self) -> bool:
        return True

    def _try_own(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
        except TimeoutError:
            return False
        self._owned = True
        try:
            if self.cache.has(self.md5):  # finished by another process since we looked
                self._release()
                return False
            self._open_source()
        except BaseException:
            self._release()  # e.g. 412: the object is not that version any more; the next reader may own it
            raise
        return True

    def _open_source(self) -> None:
        stack = contextlib.ExitStack()
        try:
            self._stream = stack.enter_context(self.fetch())
        except BaseException:
            stack.close()
            raise
        self._source = stack

    def _close_source(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
            self._stream = None

    def _release(self) -> None:
        if self._owned:
            self._owned = False
            self._lock.release()

    # --- getting verified bytes ---------------------------------------------------------------------------

    def _obtain(self) -> BinaryIO:
        if self._owned:
            return self._download(owner=True)
        progress: tuple[int, ...] = ()
        idle_since = time.monotonic()
        pause = 0.002
        while True:
            hit = self.cache.use(self.md5, self.size, label=self.label)
            if hit is not None:
                return hit
            if self._try_own():
                return self._download(owner=True)
            now = self._progress()
            if now != progress:
                progress, idle_since = now, time.monotonic()
            elif time.monotonic() - idle_since > STALL_S:
                get_logger("pixel.loader").warning("cache owner stalled; downloading a private copy", object=self.label)
                self._open_source()
                return self._download(owner=False)
            time.sleep(pause)
            pause = min(pause * 2, WAIT_PAUSE_S)

    def _progress(self) -> tuple[int, ...]:
        """What the object's downloads have written so far: a change means the owner is alive."""
        sizes = []
        for part in self.cache.parts(self.md5):
            with contextlib.suppress(FileNotFoundError):
                sizes.append(part.stat().st_size)
        return tuple(sorted(sizes))

    def _download(self, *, owner: bool) -> BinaryIO:
        """The whole object into a part file of our own, verified; the file opened for reading.

        The owner's verified part becomes the cached copy; a private copy (owner stalled) is unlinked at once
        and lives as long as its reader."""
        assert self._stream is not None
        if owner:
            for stale in self.cache.parts(self.md5):  # under the lock: left by killed owners
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
        part = self.cache.new_part_path(self.md5)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            served = cast(BinaryIO, open(part, "rb", buffering=0))  # noqa: SIM115  # closed by close()
        except BaseException:
            os.close(fd)
            part.unlink(missing_ok=True)
            raise
        writer = _Writer(fd, self.size)
        try:
            while data := self._stream.read(CHUNK):
                writer.put(data)
            writer.finish()
        except BaseException:
            with contextlib.suppress(BaseException):
                writer.finish()
            self._discard(fd, part, served)
            raise
        self._close_source()
        got = writer.digest.hexdigest()
        if got != self.md5 or (self.size is not None and writer.written != self.size):
            self._discard(fd, part, served)
            raise PermanentStoreError(
                f"{self.label}: downloaded {writer.written} bytes with md5 {got}, expected "
                f"{self.size if self.size is not None else 'any number of'} bytes with md5 {self.md5}; "
                "nothing of it was read and the copy was discarded",
                code="BadDigest",
            )
        if not owner:
            os.close(fd)
            part.unlink(missing_ok=True)
            return served
        # Verified: the reader goes on from the part file now; making it durable and visible (fsync, rename,
        # record, unlock) is left to a helper thread: a thousand 1 MiB shards paid 1.5 ms of fsync each.
        self._owned, self._handed_off = False, True
        self.cache.count("downloads")
        self.cache.finishing(
            _finisher().submit(_make_durable, fd, part, self.md5, self._lock, self.cache, writer.written)
        )
        return served

    def _discard(self, fd: int, part: Path, served: BinaryIO) -> None:
        os.close(fd)
        served.close()
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        self._close_source()
        self._release()

    # --- reading ----------------------------------------------------------------------------------------

    def read(self, n: int | None = -1) -> bytes:
        if self._verified is None:
            self._verified = self._obtain()
        return self._verified.read(CHUNK if n is None or n < 0 else n) or b""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        if self._verified is not None:
            self._verified.close()
        self._close_source()
        if not self._handed_off:
            self._release()  # a reader stopped before its download: the lock goes to the next reader
        super().close()
