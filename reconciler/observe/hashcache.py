"""The local hash cache: an unchanged file is never read twice.

md5s of local files are kept in SQLite, keyed by absolute path and checked
against device, inode, size, mtime_ns and ctime_ns. ctime is the guard that a
size-and-mtime check lacks: restoring the old mtime with `os.utime` after a
same-size edit still moves ctime, which user space cannot set back.

Racy-git rule: a file whose mtime or ctime falls within the filesystem's
timestamp granularity of "now" may still be written again inside the same tick
without any timestamp moving, so its hash is used but not cached.

The cache is an optimisation, never a source of failure: a corrupt file is
deleted and rebuilt, a locked or unwritable one is replaced by an in-memory
cache for this run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from reconciler.logs import get_logger
from reconciler.model import Entry
from reconciler.observe.hashing import CHUNK, md5_of_stream
from reconciler.paths import HASH_CACHE_FILE, hash_cache_file
from reconciler.stores.base import FileIdentity, HoldsLocalFiles, Store

CACHE_FILE = HASH_CACHE_FILE
SCHEMA_VERSION = 1
# Coarser than every common filesystem's tick (FAT 2 s, HFS+ 1 s, ext4/xfs a jiffy).
RACY_WINDOW_NS = 2_000_000_000
# Rows are written in batches (one transaction per file would cost more than hashing small
# files), at least every FLUSH_EVERY_NS so a long hashing run keeps its progress.
COMMIT_EVERY = 512
FLUSH_EVERY_NS = 5_000_000_000
# Streaming mode: paths looked up are written to a temp table this many at a time, and `forget_vanished`
# reads the unseen rows this many at a time, so neither is ever a set of the whole tree in Python.
SEEN_BATCH = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    md5 TEXT NOT NULL
)
"""


# Streaming mode's record of the paths looked up, for `forget_vanished`; TEMP: never in the cache file.
_SEEN_SCHEMA = "CREATE TEMP TABLE IF NOT EXISTS seen (path TEXT PRIMARY KEY)"


Row = tuple[str, int, int, int, int, int, str]  # path, dev, ino, size, mtime_ns, ctime_ns, md5


@dataclass(frozen=True, slots=True)
class FileKey:
    """Everything about a file that must be unchanged for its cached md5 to hold."""

    path: str
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: str, st: os.stat_result) -> FileKey:
        return cls(path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class HashCache:
    """SQLite-backed md5s, read a directory at a time. Thread-safe: one connection behind a lock."""

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        racy_window_ns: int = RACY_WINDOW_NS,
        clock: Callable[[], int] = time.time_ns,
        busy_timeout_s: float = 2.0,
    ) -> None:
        self.path = Path(path) if path is not None else hash_cache_file()
        self.racy_window_ns = racy_window_ns
        self.clock = clock
        self.busy_timeout_s = busy_timeout_s
        self.log = get_logger("pixel.hashcache")
        self._lock = threading.Lock()
        self._pending: dict[str, Row] = {}
        self._rows: dict[str, Row] = {}  # rows of the directories looked at so far
        self._loaded: set[str] = set()
        self._trees: list[str] = []  # directories (ending in "/") whose whole subtree has been read
        self._seen: set[str] = set()  # paths looked up this run
        # Streaming mode (`stream_in_key_order`): `_rows` holds the rows of `_window` only, and the seen paths
        # go through `_seen_batch` to the temp table `seen` instead of `_seen`.
        self.streaming = False
        self._window: str | None = None
        self._seen_batch: list[tuple[str]] = []
        self._last_flush = clock()
        self.persistent = True
        self._conn = self._open()

    def _connect(self, target: str) -> sqlite3.Connection:
        # check_same_thread=False: the hashing pool shares this connection under self._lock.
        conn = sqlite3.connect(
            target, timeout=self.busy_timeout_s, check_same_thread=False, isolation_level=None
        )
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                conn.execute("DROP TABLE IF EXISTS hashes")
            if target != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(_SCHEMA)
            if version != SCHEMA_VERSION:
                # Only when it changes: setting it is a write, and closing a connection that wrote checkpoints
                # the WAL with an fsync (0.3 s at the end of every warm plan, which otherwise writes nothing).
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            # Counting reads the table's pages: a damaged file fails here, not halfway through a plan.
            conn.execute("SELECT count(*) FROM hashes").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._connect(str(self.path))
        except sqlite3.DatabaseError as exc:
            if _locked(exc):
                return self._in_memory(f"cache {self.path} is locked by another process ({exc})")
            self.log.warning("hash cache unreadable; rebuilding it", path=str(self.path), error=str(exc))
            try:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                return self._connect(str(self.path))
            except (OSError, sqlite3.DatabaseError) as again:
                return self._in_memory(f"cache {self.path} could not be rebuilt ({again})")
        except OSError as exc:
            return self._in_memory(f"cache directory {self.path.parent} is not usable ({exc.strerror})")

    def _in_memory(self, why: str) -> sqlite3.Connection:
        self.log.warning("hash cache not persistent for this run; every file will be read", reason=why)
        self.persistent = False
        return self._connect(":memory:")

    def _degrade(self, exc: sqlite3.Error) -> None:
        """A cache that fails mid-run is swapped for an empty in-memory one; the run goes on."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._pending, self._rows, self._loaded, self._seen, self._trees = {}, {}, set(), set(), []
            self._window, self._seen_batch = None, []
            self._conn = self._in_memory(f"cache {self.path} failed during use ({exc})")
            if self.streaming:
                self._conn.execute(_SEEN_SCHEMA)

    def stream_in_key_order(self) -> None:
        """Hold one directory's rows at a time, for a walk that visits each directory's files together.

        `preload` then reads nothing, `lookup` reads a directory's rows when the walk reaches it and drops
        them when it moves on, and the paths seen go to a temp table (a file next to SQLite's other temp
        files, not RAM), so a tree of 10^8 files costs the cache one directory plus a flush batch. A directory
        visited twice (its files around a subdirectory's, or a hashing thread's second look) is read twice:
        one query, against several GiB of dicts for the whole tree.
        """
        try:
            with self._lock:
                if self.streaming:
                    return
                self._conn.execute(_SEEN_SCHEMA)
                self.streaming = True
                self._seen_batch = [(p,) for p in self._seen]
                self._rows, self._loaded, self._seen, self._window = {}, set(), set(), None
        except sqlite3.Error as exc:
            self._degrade(exc)

    def preload(self, directory: str) -> None:
        """Read the rows of every file below `directory` in one query, ahead of the lookups.

        A query per directory costs more than its rows: sqlite3 gives up the GIL for each query, and
        with the S3 listing thread running, getting it back is a thread switch (a warm plan of 10,000
        files in 100 directories spent a third of its time there).
        """
        low = directory.rstrip("/") + "/"
        try:
            with self._lock:
                if any(low.startswith(tree) for tree in self._trees):
                    return
                if self.streaming:  # rows come per directory; the root only bounds `forget_vanished`
                    self._trees.append(low)
                    return
                rows = self._conn.execute(
                    "SELECT path, dev, ino, size, mtime_ns, ctime_ns, md5 FROM hashes WHERE path >= ? AND path < ?",
                    (low, low[:-1] + chr(ord("/") + 1)),
                ).fetchall()
                for row in rows:
                    self._rows.setdefault(row[0], tuple(row))  # a row remembered this run is newer
                self._trees.append(low)
        except sqlite3.Error as exc:
            self._degrade(exc)

    def lookup(self, key: FileKey) -> str | None:
        directory = os.path.dirname(key.path)
        try:
            with self._lock:
                if self.streaming:
                    row = self._streamed_row(directory, key.path)
                else:
                    if directory not in self._loaded:
                        if any(f"{directory}/".startswith(tree) for tree in self._trees):
                            self._loaded.add(directory)
                        else:
                            self._load(directory)
                    self._seen.add(key.path)
                    row = self._rows.get(key.path)
        except sqlite3.Error as exc:
            self._degrade(exc)
            return None
        if row is None or row[1:6] != (key.dev, key.ino, key.size, key.mtime_ns, key.ctime_ns):
            return None
        return row[6] if len(row[6]) == 32 else None

    def lookup_many(self, keys: Sequence[FileIdentity]) -> list[str | None]:
        """`lookup` of each (path, dev, ino, size, mtime_ns, ctime_ns), the same answers, under one lock.

        A warm plan asks this for every file of a tree preloaded whole: per file, the FileKey, the lock and the
        directory's name cost more than the dict lookup they guard (10,000 files: 125 ms one by one).
        """
        if self.streaming:
            return [self.lookup(FileKey(*key)) for key in keys]
        answers: list[str | None] = []
        try:
            with self._lock:
                trees, rows, seen = tuple(self._trees), self._rows, self._seen
                for key in keys:
                    path = key[0]
                    if not path.startswith(trees):  # below a preloaded tree every row is in `rows` already
                        directory = os.path.dirname(path)
                        if directory not in self._loaded:
                            self._load(directory)
                    seen.add(path)
                    row = rows.get(path)
                    if row is None or row[1:6] != key[1:] or len(row[6]) != 32:
                        answers.append(None)
                    else:
                        answers.append(sys.intern(row[6]))  # the listing's equal md5 is interned: one string
        except sqlite3.Error as exc:
            self._degrade(exc)
            return [None] * len(keys)
        return answers

    def _streamed_row(self, directory: str, path: str) -> Row | None:
        if directory != self._window:
            self._rows = {}  # the walk has left the previous directory
            self._window = directory
            self._load(directory)
            self._loaded.clear()
        self._see(path)
        # A row remembered this run and not yet flushed is newer than the one read from the file.
        return self._pending.get(path) or self._rows.get(path)

    def _see(self, path: str) -> None:
        self._seen_batch.append((path,))
        if len(self._seen_batch) >= SEEN_BATCH:
            self._write_seen()

    def _write_seen(self) -> None:
        batch, self._seen_batch = self._seen_batch, []
        if batch:
            self._conn.executemany("INSERT OR IGNORE INTO temp.seen (path) VALUES (?)", batch)

    def _load(self, directory: str) -> None:
        """Read one directory's rows at once: a query per file would dominate a warm scan."""
        low = directory.rstrip("/") + "/"
        high = low[:-1] + chr(ord("/") + 1)
        for row in self._conn.execute(
            "SELECT path, dev, ino, size, mtime_ns, ctime_ns, md5 FROM hashes "
            "WHERE path >= ? AND path < ? AND instr(substr(path, ?), '/') = 0",
            (low, high, len(low) + 1),
        ):
            self._rows[row[0]] = tuple(row)
        self._loaded.add(directory)

    def is_racy(self, key: FileKey) -> bool:
        return racy(key.mtime_ns, key.ctime_ns, self.clock(), self.racy_window_ns)

    def remember(self, key: FileKey, md5: str) -> bool:
        """Record `md5` for `key` unless the file is too fresh to trust; True when accepted."""
        if self.is_racy(key):
            return False
        with self._lock:
            row: Row = (key.path, key.dev, key.ino, key.size, key.mtime_ns, key.ctime_ns, md5)
            self._pending[key.path] = row
            if self.streaming:
                try:
                    self._see(key.path)
                except sqlite3.Error as exc:
                    seen_failed: sqlite3.Error | None = exc
                else:
                    seen_failed = None
            else:
                self._rows[key.path] = row
                self._seen.add(key.path)
                seen_failed = None
            due = len(self._pending) >= COMMIT_EVERY or self.clock() - self._last_flush >= FLUSH_EVERY_NS
        if seen_failed is not None:
            self._degrade(seen_failed)
        elif due:
            self.flush()
        return True

    def flush(self) -> None:
        """Write pending rows in one short transaction, so other pixel processes are never kept waiting."""
        try:
            with self._lock:
                rows, self._pending = list(self._pending.values()), {}
                self._last_flush = self.clock()
                if rows:
                    self._conn.execute("BEGIN")
                    try:
                        self._conn.executemany(
                            "INSERT OR REPLACE INTO hashes (path, dev, ino, size, mtime_ns, ctime_ns, md5) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            rows,
                        )
                    except BaseException:
                        self._conn.execute("ROLLBACK")
                        raise
                    self._conn.execute("COMMIT")
                if self.streaming:  # rows flushed from the window's directory stay answerable from memory
                    self._rows.update((row[0], row) for row in rows if os.path.dirname(row[0]) == self._window)
        except sqlite3.Error as exc:
            self._degrade(exc)

    def forget_vanished(self) -> int:
        """Drop rows of files gone from the directories this run looked at, so the cache tracks the trees."""
        if self.streaming:
            return self._forget_vanished_streamed()
        with self._lock:
            unseen = [p for p in self._rows if p not in self._seen]
        gone = [(p,) for p in unseen if not os.path.lexists(p)]
        if not gone:
            return 0
        try:
            with self._lock:
                self._delete(gone)
                for (path,) in gone:
                    self._rows.pop(path, None)
        except sqlite3.Error as exc:
            self._degrade(exc)
            return 0
        return len(gone)

    def _forget_vanished_streamed(self) -> int:
        """`forget_vanished` over the preloaded roots, the unseen rows read by a cursor and the gone deleted in batches.

        The same rows as the in-memory mode's (which preloads those roots whole): every row below a root
        that was not looked up this run and whose file no longer exists.
        """
        dropped = 0
        try:
            with self._lock:
                self._write_seen()
                roots = list(self._trees)
            for low in roots:
                with self._lock:
                    unseen = self._conn.execute(
                        "SELECT path FROM hashes WHERE path >= ? AND path < ? "
                        "AND path NOT IN (SELECT path FROM temp.seen)",
                        (low, low[:-1] + chr(ord("/") + 1)),
                    ).fetchmany
                    # Deleting from a table while a cursor reads it is undefined in SQLite: the deletes wait
                    # for the cursor's end, so what is held is the files that vanished, not the tree.
                    gone: list[tuple[str]] = []
                    while rows := unseen(SEEN_BATCH):
                        gone += ((p,) for (p,) in rows if not os.path.lexists(p))
                    if deleted := self._delete(gone):
                        # The streamed mode's rows and window were read before: some may name deleted files.
                        self._rows = {}
                        self._window = None
                    dropped += deleted
        except sqlite3.Error as exc:
            self._degrade(exc)
            return 0
        return dropped

    def _delete(self, gone: list[tuple[str]]) -> int:
        """Drop these paths' rows in one transaction: all of them or, on an error, none. Under the lock."""
        if not gone:
            return 0
        self._conn.execute("BEGIN")
        try:
            self._conn.executemany("DELETE FROM hashes WHERE path = ?", gone)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return len(gone)

    def close(self) -> None:
        self.flush()
        self.forget_vanished()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def racy(mtime_ns: int, ctime_ns: int, now_ns: int, window_ns: int = RACY_WINDOW_NS) -> bool:
    """A file changed so recently (`window_ns` before `now_ns`, or later) that another write within the same
    timestamp tick could leave its stat unchanged: what it holds cannot be vouched for by its stat."""
    return max(mtime_ns, ctime_ns) >= now_ns - window_ns


def _locked(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class CachedHasher:
    """A Hasher that reads a local file only when the cache cannot vouch for it.

    `files_read` / `bytes_read` count file content actually read (the benchmark's
    "a warm no-op plan reads nothing"); `cache_hits` counts files answered from
    the cache. With `rehash_all` the cache is neither consulted nor trusted, but
    is refreshed with what was read.
    """

    def __init__(self, cache: HashCache | None = None, *, rehash_all: bool = False) -> None:
        self.cache = cache if cache is not None else HashCache()
        self.rehash_all = rehash_all
        self._lock = threading.Lock()
        self.files_read = 0
        self.bytes_read = 0
        self.cache_hits = 0
        self._stores: dict[int, tuple[Store, bool]] = {}

    def known(self, store: Store, entry: Entry) -> str | None:
        """A cache hit without reading the file; None when the file must be read.

        The file is keyed as the listing that made `entry` saw it where the store can say (no second
        stat): the md5 returned is then that of the very version `entry.etag` names.
        """
        local = self._local_files(store)
        if local is None:
            return None
        walked = local.walked_identity(entry)
        if walked is not None:
            return self._hit(FileKey(*walked))
        found = _file_key(local, entry.key)
        return None if found is None else self._hit(found[1])

    def known_many(self, store: Store, entries: Sequence[Entry], base: str = "") -> list[str | None]:
        """`known` of each entry (its key relative to `base`): the same answers and count, the cache asked once."""
        local = self._local_files(store)
        if local is None or self.rehash_all:
            return [None] * len(entries)
        answers: list[str | None] = [None] * len(entries)
        asked: list[int] = []
        keys: list[FileIdentity] = []
        for at, entry in enumerate(entries):
            full = entry if not base else Entry(base + entry.key, entry.size, entry.md5, entry.mtime_ns, entry.etag)
            identity = local.walked_identity(full)
            if identity is None:  # the walk cannot say: a stat, as `known` does
                found = _file_key(local, full.key)
                if found is None:
                    continue  # not a file on this machine (or gone): nothing to key a cache on
                identity = _fields(found[1])
            asked.append(at)
            keys.append(identity)
        for at, answer in zip(asked, self.cache.lookup_many(keys), strict=True):
            answers[at] = answer
        hits = sum(answer is not None for answer in answers)
        with self._lock:
            self.cache_hits += hits
        return answers

    def md5(self, store: Store, entry: Entry) -> str:
        local = self._local_files(store)
        if local is None:  # not a file on this machine: nothing to key a cache on
            return self._count(entry.size, md5_of_stream(store, entry.key))
        path = local.file_path(entry.key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # gone, or not readable: the store's own reader says why, as for any other read
            return self._count(entry.size, md5_of_stream(store, entry.key))
        # One open descriptor, its identity taken with fstat before and after the read: a path stat on each
        # side, a buffered file object and its isatty ioctl were half of a small file's cost (10,000 files of
        # 1-8 KiB: 30 -> 16 us each). The identity is the file that was read, whatever its path names meanwhile.
        try:
            before = FileKey.of(path, os.fstat(fd))
            cached = self._hit(before)
            if cached is not None:
                return cached
            md5, size = _md5_of_fd(fd, before.size)
            after = FileKey.of(path, os.fstat(fd))
        finally:
            os.close(fd)
        self._count(size, md5)
        # Changed while being read: the digest matches neither version reliably, so it is not kept.
        if after == before:
            self.cache.remember(after, md5)
        return md5

    def _local_files(self, store: Store) -> HoldsLocalFiles | None:
        # A Protocol isinstance() costs microseconds, more than the cache hit it guards: asked once per store.
        found = self._stores.get(id(store))
        if found is None or found[0] is not store:
            found = self._stores[id(store)] = (store, isinstance(store, HoldsLocalFiles))
            if found[1] and not self.rehash_all:
                self.cache.preload(cast(HoldsLocalFiles, store).root_path)
        return cast(HoldsLocalFiles, store) if found[1] else None

    def _hit(self, key: FileKey) -> str | None:
        if self.rehash_all:
            return None  # neither consulted nor trusted; refreshed by what is read
        cached = self.cache.lookup(key)
        if cached is not None:
            with self._lock:
                self.cache_hits += 1
        return cached

    def _count(self, size: int, md5: str) -> str:
        with self._lock:
            self.files_read += 1
            self.bytes_read += size
        return md5

    def close(self) -> None:
        self.cache.close()


def _file_key(store: HoldsLocalFiles, key: str) -> tuple[str, FileKey] | None:
    path = store.file_path(key)
    try:
        return path, FileKey.of(path, os.stat(path))
    except OSError:
        return None


def _fields(key: FileKey) -> FileIdentity:
    return key.path, key.dev, key.ino, key.size, key.mtime_ns, key.ctime_ns


def _md5_of_fd(fd: int, size_hint: int, chunk: int = CHUNK) -> tuple[str, int]:
    """md5 and length of what `fd` holds from its offset on. A small file is one read of its size (and the
    read that sees its end); a large one is read into one buffer, reused, so no chunk is a fresh allocation."""
    digest = hashlib.md5()
    if size_hint < chunk:
        size = 0
        want = size_hint + 1
        while data := os.read(fd, want):
            digest.update(data)
            size += len(data)
            want = chunk
        return digest.hexdigest(), size
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    size = 0
    while n := os.readv(fd, [buffer]):
        digest.update(view[:n])  # hashlib gives the GIL up over an update this large: threads hash in parallel
        size += n
    return digest.hexdigest(), size
