"""One SQLite file in a private temporary directory: the spilled sides, actions, findings and edges of a plan.

Keys are stored as UTF-8 BLOBs (`surrogatepass`, so a local name that is not UTF-8 survives), and
SQLite compares BLOBs byte by byte: UTF-8 byte order is code point order, which is Python's `str`
order. So `ORDER BY` here is `sorted()` there, and a side read back by its primary key is already in
the order the merge join needs.

The directory lives under the cache directory the caller names (never the specs' directory) and is
removed on close, also after an error; the page cache is capped so the file, not the process, grows.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from reconciler.model import Entry

# SQLite's page cache, per connection: what the spill may hold in memory however many objects it keeps.
CACHE_KIB = 32 * 1024
_PREFIX = "pixel-spill-"
_BATCH = 4096


def remove_stale(parent: Path) -> list[Path]:
    """Remove the spill directories in `parent` of processes that no longer run; the ones removed."""
    removed = []
    for path in parent.glob(f"{_PREFIX}*"):
        pid = path.name[len(_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not running(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def running(pid: int) -> bool:
    """Whether process `pid` runs on this machine (one of another user's counts: not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def key_text(key: bytes) -> str:
    return key.decode("utf-8", "surrogatepass")


def dump(value: object) -> bytes:
    """An action, finding or source as the spill stores it: the planner's own frozen values, pickled."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def load(blob: bytes) -> Any:
    # Only bytes this process wrote into its own private directory are ever unpickled.
    return pickle.loads(blob)


class Spill:
    """The SQLite file of one streamed plan; a context manager that removes its directory on exit."""

    def __init__(self, parent: Path) -> None:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale(parent)
        # The pid in the name: a later run removes what a killed one (SIGKILL runs no cleanup) left behind.
        self.directory = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=parent))
        self.db = sqlite3.connect(self.directory / "plan.sqlite", isolation_level=None, check_same_thread=False)
        # A scratch file: a crash loses nothing a re-run does not rebuild, so no journal and no fsync.
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE", f"cache_size=-{CACHE_KIB}"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute("BEGIN")
        self._sides = 0

    def side(self, name: str) -> SpilledSide:
        """A new, empty side (`name` only for messages)."""
        self._sides += 1
        return SpilledSide(self, f"side{self._sides}", name)

    def commit(self) -> None:
        """Ends the open write transaction and starts another (one transaction is far faster than many)."""
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")

    def close(self) -> None:
        try:
            self.db.close()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class SpilledSide(Mapping[str, Entry]):
    """One side of a mapping, relative key -> Entry, in the spill: what `MappingObservation` holds in a dict.

    Iteration is in key order (the primary key's), so the planner's merge join reads it as it is; a lookup
    is one indexed read. `add` is what the observer calls per listed object; a key added twice keeps the
    later entry, as a dict does.
    """

    def __init__(self, spill: Spill, table: str, name: str) -> None:
        self._db = spill.db
        self._table = table
        self.name = name
        self._db.execute(
            f"CREATE TABLE {table} (rel BLOB PRIMARY KEY, size INTEGER NOT NULL, md5 TEXT, mtime_ns INTEGER, "
            "etag TEXT) WITHOUT ROWID"
        )
        self._len = 0
        self._get = f"SELECT size, md5, mtime_ns, etag FROM {table} WHERE rel = ?"
        self._insert = f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?, ?)"

    def add_all(self, entries: Iterable[Entry]) -> None:
        rows: list[tuple[bytes, int, str | None, int | None, str | None]] = []
        for entry in entries:
            rows.append((key_bytes(entry.key), entry.size, entry.md5, entry.mtime_ns, entry.etag))
            if len(rows) >= _BATCH:
                self._db.executemany(self._insert, rows)
                rows.clear()
        if rows:
            self._db.executemany(self._insert, rows)
        (self._len,) = self._db.execute(f"SELECT count(*) FROM {self._table}").fetchone()

    def __getitem__(self, rel: str) -> Entry:
        row = self._db.execute(self._get, (key_bytes(rel),)).fetchone()
        if row is None:
            raise KeyError(rel)
        return Entry(rel, *row)

    def get(self, rel: str, default: Any = None) -> Any:
        row = self._db.execute(self._get, (key_bytes(rel),)).fetchone()
        return default if row is None else Entry(rel, *row)

    def __contains__(self, rel: object) -> bool:
        if not isinstance(rel, str):
            return False
        return self._db.execute(f"SELECT 1 FROM {self._table} WHERE rel = ?", (key_bytes(rel),)).fetchone() is not None

    def __iter__(self) -> Iterator[str]:
        for (rel,) in self._db.execute(f"SELECT rel FROM {self._table} ORDER BY rel"):
            yield key_text(rel)

    def __len__(self) -> int:
        return self._len

    def entries(self) -> Iterator[Entry]:
        """Every entry in key order (what `.values()` gives, without a lookup per key)."""
        for rel, size, md5, mtime_ns, etag in self._db.execute(
            f"SELECT rel, size, md5, mtime_ns, etag FROM {self._table} ORDER BY rel"
        ):
            yield Entry(key_text(rel), size, md5, mtime_ns, etag)

    def items(self) -> Iterator[tuple[str, Entry]]:  # type: ignore[override]
        for entry in self.entries():
            yield entry.key, entry

    def values(self) -> Iterator[Entry]:  # type: ignore[override]
        return self.entries()
