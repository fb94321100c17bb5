"""The hash cache under `--scale stream`: one directory's rows at a time, the same md5s, hits and rows left."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from reconciler.model import Desired, LocalStoreSpec, MappingSpec, S3StoreSpec
from reconciler.observe import observe
from reconciler.observe.hashcache import CACHE_FILE, COMMIT_EVERY, CachedHasher, FileKey, HashCache
from reconciler.scale.observe import observe_spilled
from reconciler.scale.spill import Spill
from reconciler.stores.base import Store
from reconciler.stores.local import LocalStore
from reconciler.stores.memory import MemoryStore

NOW_NS = 4_000_000_000_000_000_000  # far after every real file's mtime and ctime: none is racy unless made so


def now() -> int:
    return NOW_NS


def world(root: Path) -> tuple[Desired, dict[str, Store]]:
    desired = Desired(
        stores={"disk": LocalStoreSpec("disk", str(root)), "s3": S3StoreSpec("s3", "bucket")},
        mappings=(MappingSpec("m", "disk", "src", "s3", "pre/"),),
    )
    return desired, {"disk": LocalStore("disk", root), "s3": MemoryStore("s3")}


def rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute("SELECT * FROM hashes"))


def test_the_streamed_cache_gives_the_in_memory_caches_md5s_hits_and_rows(tmp_path: Path) -> None:
    src = tmp_path / "root" / "src"
    # "a" and "a.txt" side by side: the walk visits a/ before a.txt, the opposite of the paths' string order,
    # so directory "src" is visited, left for "src/a", and visited again.
    names = [f"{d}/f{i:02d}.bin" for d in ("a", "a/b", "a/b/c", "a-x", "d", "d/e", "gone") for i in range(40)]
    names += ["a.txt", "z.txt", *(f"top{i}.bin" for i in range(20))]
    for i, name in enumerate(names):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(f"content {i}".encode() * (i % 7 + 1))
    desired, stores = world(tmp_path / "root")
    seeded = tmp_path / "seeded" / CACHE_FILE
    cold = CachedHasher(HashCache(seeded, clock=now))
    observe(desired, stores, cold)
    cold.close()
    assert cold.files_read == len(names)

    for name in names[::9]:  # edited: some the same size, some not
        (src / name).write_bytes((src / name).read_bytes().upper() + b"!" * (len(name) % 2))
    for name in names[4::23]:  # racy: touched within the racy window of "now"
        os.utime(src / name, ns=(NOW_NS, NOW_NS))
    for name in names[2::31]:
        (src / name).unlink(missing_ok=True)
    shutil.rmtree(src / "gone")  # a whole directory the walk never reaches: its rows go all the same
    for i in range(30):
        (src / "d" / f"new{i}.bin").write_bytes(f"new {i}".encode())

    outcome = {}
    for mode in ("memory", "stream"):
        db = tmp_path / mode / CACHE_FILE
        db.parent.mkdir()
        shutil.copy(seeded, db)
        hasher = CachedHasher(HashCache(db, clock=now))
        if mode == "memory":
            local = dict(observe(desired, stores, hasher).mappings["m"].local)
        else:
            with Spill(tmp_path / "spill") as spill:
                local = dict(observe_spilled(desired, stores, hasher, spill).mappings["m"].local.items())
            assert hasher.cache.streaming
        hasher.close()
        outcome[mode] = (local, hasher.cache_hits, hasher.files_read, rows(db))
    memory, streamed = outcome["memory"], outcome["stream"]
    assert streamed[0] == memory[0]
    assert {k: e.md5 for k, e in streamed[0].items()} == {
        str(p.relative_to(src)): hashlib.md5(p.read_bytes()).hexdigest() for p in src.rglob("*") if p.is_file()
    }
    assert streamed[1:3] == memory[1:3]
    assert memory[1] > 0 and memory[2] > 30 and memory[1] + memory[2] == len(memory[0])
    assert streamed[3] == memory[3]
    kept = {os.path.relpath(str(r[0]), src) for r in memory[3]}
    assert not any(k.startswith("gone/") for k in kept) and "d/new0.bin" in kept
    assert names[2] not in kept  # removed: forgotten
    assert all(r[4] != NOW_NS for r in memory[3])  # racy: hashed, not cached


class _Watched(HashCache):
    """A HashCache that records how many rows it holds in memory after every lookup."""

    most = 0

    def lookup(self, key: FileKey) -> str | None:
        found = super().lookup(key)
        self.most = max(self.most, len(self._rows) + len(self._pending))
        return found


@pytest.mark.slow
def test_the_streamed_cache_holds_one_directory_and_a_flush_batch(tmp_path: Path) -> None:
    dirs, per_dir = 200, 100
    src = tmp_path / "root" / "src"
    db = tmp_path / "cache" / CACHE_FILE
    seed = HashCache(db, clock=now)
    for d in range(dirs):
        (src / f"d{d:03d}").mkdir(parents=True)
        for f in range(per_dir):
            path = src / f"d{d:03d}" / f"f{f:03d}"
            path.write_bytes(b"%d/%d" % (d, f))
            if f % 10:  # one file in ten is new to the cache: hashed in the pool, remembered, flushed
                seed.remember(FileKey.of(str(path), path.stat()), hashlib.md5(path.read_bytes()).hexdigest())
    seed.close()
    desired, stores = world(tmp_path / "root")
    cache = _Watched(db, clock=now)
    hasher = CachedHasher(cache)
    with Spill(tmp_path / "spill") as spill:
        observed = observe_spilled(desired, stores, hasher, spill)
        assert len(observed.mappings["m"].local) == dirs * per_dir
    hasher.close()
    assert hasher.cache_hits == dirs * (per_dir - per_dir // 10)
    assert 0 < cache.most <= per_dir + COMMIT_EVERY
    assert len(rows(db)) == dirs * per_dir


def test_a_row_remembered_in_the_window_is_answered_before_and_after_its_flush(tmp_path: Path) -> None:
    path = tmp_path / "d" / "f"
    path.parent.mkdir()
    path.write_bytes(b"x")
    cache = HashCache(tmp_path / CACHE_FILE, clock=now)
    cache.stream_in_key_order()
    key = FileKey.of(str(path), path.stat())
    assert cache.lookup(key) is None
    assert cache.remember(key, hashlib.md5(b"x").hexdigest())
    assert cache.lookup(key) == hashlib.md5(b"x").hexdigest()
    cache.flush()
    assert cache.lookup(key) == hashlib.md5(b"x").hexdigest()
    assert cache.lookup(FileKey(str(tmp_path / "e" / "g"), 0, 0, 0, 0, 0)) is None  # another directory
    assert cache.lookup(key) == hashlib.md5(b"x").hexdigest()  # read back from the file
    cache.close()
