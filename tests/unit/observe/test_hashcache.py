"""The local hash cache: hits, misses on any key change, the racy-git rule, and never-fatal failures."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reconciler.model import Entry
from reconciler.observe.hashcache import CACHE_FILE, CachedHasher, FileKey, HashCache
from reconciler.stores.local import LocalStore
from reconciler.stores.memory import MemoryStore

HOUR_NS = 3600 * 1_000_000_000


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def age(path: Path, ns: int = HOUR_NS) -> None:
    """Push mtime an hour into the past so the racy-git rule does not apply to mtime."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - ns))


def later_clock(offset_ns: int = HOUR_NS) -> int:
    # ctime cannot be set back, so tests move "now" forward instead.
    return time.time_ns() + offset_ns


def entry(store: LocalStore, key: str) -> Entry:
    found = store.stat(key)
    assert found is not None
    return found


@pytest.fixture
def tree(tmp_path: Path) -> LocalStore:
    root = tmp_path / "root"
    root.mkdir()
    for i in range(5):
        (root / f"f{i}.bin").write_bytes(f"content {i}".encode() * 100)
    return LocalStore("disk", root)


def hasher(tmp_path: Path, **kw: object) -> CachedHasher:
    return CachedHasher(HashCache(tmp_path / "cache" / CACHE_FILE, clock=later_clock), **kw)  # type: ignore[arg-type]


def test_warm_cache_reads_no_file_and_survives_reopening(tree: LocalStore, tmp_path: Path) -> None:
    cold = hasher(tmp_path)
    digests = {k: cold.md5(tree, entry(tree, k)) for k in (f"f{i}.bin" for i in range(5))}
    cold.close()
    assert cold.files_read == 5 and cold.cache_hits == 0
    assert digests["f3.bin"] == md5(b"content 3" * 100)

    warm = hasher(tmp_path)
    again = {k: warm.md5(tree, entry(tree, k)) for k in digests}
    warm.close()
    assert again == digests
    assert warm.files_read == 0 and warm.bytes_read == 0 and warm.cache_hits == 5


def test_same_size_edit_with_mtime_restored_is_read_again(tree: LocalStore, tmp_path: Path) -> None:
    path = tree.path("f1.bin")
    h = hasher(tmp_path)
    first = h.md5(tree, entry(tree, "f1.bin"))
    st = path.stat()
    time.sleep(0.01)  # let the ctime tick move on coarse-clock filesystems
    path.write_bytes(b"CONTENT 1" * 100)  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size
    second = h.md5(tree, entry(tree, "f1.bin"))
    assert second == md5(b"CONTENT 1" * 100) != first
    assert h.files_read == 2


def test_inode_change_misses_even_with_identical_stat_times(tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "c.sqlite3", clock=later_clock)
    key = FileKey("/data/a", 1, 100, 10, 5, 6)
    assert cache.remember(key, "0" * 32)
    assert cache.lookup(key) == "0" * 32
    for changed in (
        FileKey("/data/a", 1, 101, 10, 5, 6),
        FileKey("/data/a", 2, 100, 10, 5, 6),
        FileKey("/data/a", 1, 100, 11, 5, 6),
        FileKey("/data/a", 1, 100, 10, 4, 6),
        FileKey("/data/a", 1, 100, 10, 5, 7),
        FileKey("/data/b", 1, 100, 10, 5, 6),
    ):
        assert cache.lookup(changed) is None
    cache.close()


def test_racy_files_are_hashed_but_not_cached(tree: LocalStore, tmp_path: Path) -> None:
    h = CachedHasher(HashCache(tmp_path / "c.sqlite3"))  # real clock: the files were just written
    assert h.md5(tree, entry(tree, "f0.bin")) == md5(b"content 0" * 100)
    assert h.md5(tree, entry(tree, "f0.bin")) == md5(b"content 0" * 100)
    assert h.files_read == 2 and h.cache_hits == 0
    old = FileKey("/x", 1, 1, 1, time.time_ns() - HOUR_NS, time.time_ns() - HOUR_NS)
    assert not h.cache.is_racy(old)
    assert h.cache.is_racy(FileKey("/x", 1, 1, 1, time.time_ns() - HOUR_NS, time.time_ns()))
    h.close()


def test_rehash_all_reads_every_file_despite_a_warm_cache(tree: LocalStore, tmp_path: Path) -> None:
    warmup = hasher(tmp_path)
    warmup.md5(tree, entry(tree, "f2.bin"))
    warmup.close()
    forced = hasher(tmp_path, rehash_all=True)
    assert forced.md5(tree, entry(tree, "f2.bin")) == md5(b"content 2" * 100)
    forced.close()
    assert forced.files_read == 1 and forced.cache_hits == 0


def test_corrupt_cache_file_is_rebuilt(tree: LocalStore, tmp_path: Path) -> None:
    path = tmp_path / "cache" / CACHE_FILE
    path.parent.mkdir()
    path.write_bytes(b"this is not a sqlite database at all" * 200)
    cache = HashCache(path, clock=later_clock)
    assert cache.persistent
    h = CachedHasher(cache)
    h.md5(tree, entry(tree, "f0.bin"))
    h.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM hashes").fetchone()[0] == 1


def test_locked_cache_falls_back_to_memory(tree: LocalStore, tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    HashCache(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        cache = HashCache(path, clock=later_clock, busy_timeout_s=0.05)
        h = CachedHasher(cache)
        assert h.md5(tree, entry(tree, "f4.bin")) == md5(b"content 4" * 100)
        assert not cache.persistent
        h.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_unwritable_cache_directory_is_not_fatal(tree: LocalStore, tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    h = CachedHasher(HashCache(blocker / "sub" / CACHE_FILE, clock=later_clock))
    assert h.md5(tree, entry(tree, "f0.bin")) == md5(b"content 0" * 100)
    assert not h.cache.persistent
    h.close()


def test_non_local_stores_are_streamed_and_counted(tmp_path: Path) -> None:
    store = MemoryStore("mem")
    store.put("k", b"abc")
    h = hasher(tmp_path)
    assert h.md5(store, Entry("k", 3, None)) == md5(b"abc")
    assert h.files_read == 1 and h.bytes_read == 3
    h.close()


def test_hashing_pool_threads_share_one_cache(tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(200):
        (root / f"{i:03}").write_bytes(str(i).encode())
    store = LocalStore("disk", root)
    h = hasher(tmp_path)
    keys = [f"{i:03}" for i in range(200)]
    seen: set[int] = set()

    def one(key: str) -> str:
        seen.add(threading.get_ident())
        return h.md5(store, entry(store, key))

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, keys))
    h.close()
    assert got == [md5(str(i).encode()) for i in range(200)]
    warm = hasher(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda k: warm.md5(store, entry(store, k)), keys)) == got
    warm.close()
    assert warm.files_read == 0 and warm.cache_hits == 200


def test_rows_are_found_per_directory_without_bleeding_into_neighbours(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    keys = {p: FileKey(p, 1, i, 1, 1, 1) for i, p in enumerate(["/d/a/x", "/d/a/b/y", "/d/ab/z", "/d/a0", "/x"])}
    writer = HashCache(path, clock=later_clock)
    for p, key in keys.items():
        assert writer.remember(key, hashlib.md5(p.encode()).hexdigest())
    writer.close()
    reader = HashCache(path, clock=later_clock)
    for p in ["/d/ab/z", "/d/a/x", "/x", "/d/a0", "/d/a/b/y"]:
        assert reader.lookup(keys[p]) == hashlib.md5(p.encode()).hexdigest()
    assert reader.lookup(FileKey("/d/a/nothing", 1, 0, 1, 1, 1)) is None
    reader.close()


def test_rows_of_deleted_files_are_dropped_when_their_directory_is_scanned(tree: LocalStore, tmp_path: Path) -> None:
    h = hasher(tmp_path)
    for i in range(5):
        h.md5(tree, entry(tree, f"f{i}.bin"))
    h.close()
    tree.path("f3.bin").unlink()
    again = hasher(tmp_path)
    for i in (0, 1, 2, 4):
        again.md5(tree, entry(tree, f"f{i}.bin"))
    assert again.cache.forget_vanished() == 1
    again.close()
    with sqlite3.connect(tmp_path / "cache" / CACHE_FILE) as conn:
        paths = sorted(Path(p).name for (p,) in conn.execute("SELECT path FROM hashes"))
    assert paths == ["f0.bin", "f1.bin", "f2.bin", "f4.bin"]


def test_known_keys_on_the_walks_stat_and_misses_once_the_file_changed_since(tree: LocalStore, tmp_path: Path) -> None:
    cold = hasher(tmp_path)
    walked = {e.key: e for e in tree.list("")}
    assert {k: cold.md5(tree, e) for k, e in walked.items()}["f2.bin"] == md5(b"content 2" * 100)
    cold.close()

    warm = hasher(tmp_path)
    assert warm.known(tree, walked["f2.bin"]) == md5(b"content 2" * 100)
    path = tree.path("f2.bin")
    before = path.stat()
    path.write_bytes(b"CONTENT 2" * 100)  # same size, mtime put back: only ctime moved
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    (rewalked,) = (e for e in tree.list("") if e.key == "f2.bin")
    # The old listing's version is still the one the cache knows; the new one is not, though size and mtime agree.
    assert rewalked.etag != walked["f2.bin"].etag and rewalked.size == walked["f2.bin"].size
    assert warm.known(tree, rewalked) is None
    assert warm.md5(tree, rewalked) == md5(b"CONTENT 2" * 100)
    warm.close()


def test_an_entry_whose_version_is_not_a_walked_one_falls_back_to_a_stat(tree: LocalStore, tmp_path: Path) -> None:
    cold = hasher(tmp_path)
    real = entry(tree, "f0.bin")
    cold.md5(tree, real)
    assert cold.known(tree, Entry("f0.bin", real.size, None, etag="not-a-version")) == md5(b"content 0" * 100)
    assert cold.known(tree, Entry("f0.bin", real.size + 1, None, etag=real.etag)) == md5(b"content 0" * 100)
    cold.close()


def test_a_preloaded_tree_answers_every_directory_below_it_with_one_query(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for d in ("a", "a/b", "c"):
        (root / d).mkdir(parents=True)
        (root / d / "f").write_bytes(d.encode())
    (tmp_path / "rootless").mkdir()
    (tmp_path / "rootless" / "f").write_bytes(b"neighbour")
    store = LocalStore("disk", root)
    neighbour = LocalStore("other", tmp_path / "rootless")
    cold = hasher(tmp_path)
    for s, key in ((store, "a/f"), (store, "a/b/f"), (store, "c/f"), (neighbour, "f")):
        cold.md5(s, entry(s, key))
    cold.close()

    cache = HashCache(tmp_path / "cache" / CACHE_FILE, clock=later_clock)
    statements: list[str] = []
    cache._conn.set_trace_callback(statements.append)
    warm = CachedHasher(cache)
    assert [warm.known(store, e) for e in store.list("")] == [md5(b"a/b"), md5(b"a"), md5(b"c")]
    assert sum("SELECT path" in s for s in statements) == 1
    assert all(not p.startswith(str(tmp_path / "rootless")) for p in cache._rows)  # only the store's own tree
    assert warm.known(neighbour, entry(neighbour, "f")) == md5(b"neighbour")
    warm.close()


def test_a_warm_plan_writes_nothing_to_the_cache(tree: LocalStore, tmp_path: Path) -> None:
    cold = hasher(tmp_path)
    walked = list(tree.list(""))
    for e in walked:
        cold.md5(tree, e)
    cold.close()
    db = tmp_path / "cache" / CACHE_FILE
    os.utime(db, ns=(0, 0))
    warm = CachedHasher(HashCache(db, clock=later_clock))
    assert all(warm.known(tree, e) is not None for e in walked)
    warm.close()
    # Any write (even PRAGMA user_version) makes closing checkpoint the WAL into the file, with an fsync:
    # that was a warm plan's last 0.3 s.
    assert db.stat().st_mtime_ns == 0
