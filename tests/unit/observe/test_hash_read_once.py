"""A cold hash of a local file: one open descriptor, identity by fstat around the read, no path stat.

The plan's hash stage runs this per file (10,000 small files on the bench tree), so what it costs per file
is the serial start of every first apply; what it keeps is the cache's rule that a file changed while read
is hashed but never remembered.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.model import Entry
from reconciler.observe import hashcache
from reconciler.observe.hashcache import CACHE_FILE, CachedHasher, HashCache
from reconciler.stores.local import LocalStore

HOUR_NS = 3600 * 1_000_000_000


def later_clock() -> int:
    return time.time_ns() + HOUR_NS  # every file old enough to be cached


def listed(store: LocalStore, key: str) -> Entry:
    found = store.stat(key)
    assert found is not None
    return found


def test_a_cold_hash_stats_no_path_and_opens_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    root.mkdir()
    for i in range(20):
        (root / f"f{i}.bin").write_bytes(os.urandom(100 + i))
    store = LocalStore("disk", root)
    entries = [listed(store, f"f{i}.bin") for i in range(20)]
    hasher = CachedHasher(HashCache(tmp_path / CACHE_FILE, clock=later_clock))
    calls = {"stat": 0, "open": 0}
    real_stat, real_open = os.stat, os.open

    def counted_stat(*args: object, **kwargs: object) -> os.stat_result:
        calls["stat"] += 1
        return real_stat(*args, **kwargs)  # type: ignore[arg-type]

    def counted_open(*args: object, **kwargs: object) -> int:
        calls["open"] += 1
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", counted_stat)
    monkeypatch.setattr(os, "open", counted_open)
    digests = [hasher.md5(store, e) for e in entries]
    monkeypatch.undo()
    assert digests == [hashlib.md5((root / f"f{i}.bin").read_bytes()).hexdigest() for i in range(20)]
    assert calls == {"stat": 0, "open": 20}
    assert hasher.files_read == 20 and hasher.bytes_read == sum(100 + i for i in range(20))
    hasher.close()
    warm = CachedHasher(HashCache(tmp_path / CACHE_FILE, clock=later_clock))
    assert [warm.md5(store, e) for e in entries] == digests and warm.files_read == 0  # every one remembered
    warm.close()


def test_a_file_changed_while_it_is_read_is_hashed_but_not_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    target = root / "growing.bin"
    target.write_bytes(b"a" * 64)
    store = LocalStore("disk", root)
    real = hashcache._md5_of_fd

    def appended_meanwhile(fd: int, size_hint: int) -> tuple[str, int]:
        answer = real(fd, size_hint)
        with target.open("ab") as f:  # another writer, after the bytes were read and before the second fstat
            f.write(b"b")
        return answer

    monkeypatch.setattr(hashcache, "_md5_of_fd", appended_meanwhile)
    hasher = CachedHasher(HashCache(tmp_path / CACHE_FILE, clock=later_clock))
    assert hasher.md5(store, listed(store, "growing.bin")) == hashlib.md5(b"a" * 64).hexdigest()
    hasher.close()
    monkeypatch.undo()
    again = CachedHasher(HashCache(tmp_path / CACHE_FILE, clock=later_clock))
    assert again.md5(store, listed(store, "growing.bin")) == hashlib.md5(b"a" * 64 + b"b").hexdigest()
    assert again.files_read == 1 and again.cache_hits == 0
    again.close()


def test_a_file_that_is_gone_fails_as_the_stores_read_does(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "x.bin").write_bytes(b"x")
    store = LocalStore("disk", root)
    gone = listed(store, "x.bin")
    (root / "x.bin").unlink()
    hasher = CachedHasher(HashCache(tmp_path / CACHE_FILE, clock=later_clock))
    with pytest.raises(OSError):
        hasher.md5(store, gone)
    assert hasher.files_read == 0
    hasher.close()


@given(
    data=st.binary(max_size=700),
    hint=st.integers(min_value=0, max_value=700),
    chunk=st.integers(min_value=1, max_value=300),
)
def test_the_md5_of_a_descriptor_is_of_every_byte_whatever_the_size_it_was_told(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, hint: int, chunk: int
) -> None:
    # The size told is the walk's: a file that grew or shrank since must still be hashed whole.
    path = tmp_path_factory.mktemp("fd") / "f.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        # Small chunks: the large-file path's reused buffer with a few hundred bytes.
        assert hashcache._md5_of_fd(fd, hint, chunk) == (hashlib.md5(data).hexdigest(), len(data))
    finally:
        os.close(fd)
