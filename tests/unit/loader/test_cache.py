"""The verified cache without a server: owner and follower, takeover, corruption, LRU, sizes."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import BinaryIO
from unittest import mock

import pytest

from reconciler.loader import cache as cache_module
from reconciler.loader.cache import CHUNK, ObjectCache
from reconciler.stores.base import PermanentStoreError
from reconciler.units import parse_size
from tests.unit.loader.sources import CountingSource

BODY = os.urandom(3 * CHUNK + 12345)
MD5 = hashlib.md5(BODY).hexdigest()


class Source(CountingSource):
    def __init__(self, body: bytes = BODY) -> None:
        super().__init__(body)


def read_all(stream: BinaryIO, n: int = CHUNK) -> bytes:
    parts = []
    while data := stream.read(n):
        parts.append(data)
    return b"".join(parts)


# A known small size is hashed and written inline; an unknown one (or a large one) on a helper thread.
SIZES = pytest.mark.parametrize("size", [len(BODY), None], ids=["inline", "helper-thread"])


@SIZES
def test_a_miss_is_downloaded_verified_and_then_served_from_the_copy(tmp_path: Path, size: int | None) -> None:
    cache, source = ObjectCache(tmp_path), Source()
    with cache.open(MD5, size, source, label="k") as stream:
        assert read_all(stream) == BODY
    cache.settle()
    assert cache.path(MD5).read_bytes() == BODY and not cache.parts(MD5)
    with cache.open(MD5, len(BODY), source, label="k") as stream:
        assert read_all(stream) == BODY
    assert source.fetches == 1 and (cache.downloads, cache.hits) == (1, 1)


def test_a_second_reader_gets_the_owners_verified_copy_and_fetches_nothing(tmp_path: Path) -> None:
    owner_cache, other_cache, source = ObjectCache(tmp_path), ObjectCache(tmp_path), Source()
    with owner_cache.open(MD5, len(BODY), source, label="k") as owner:
        first = owner.read(CHUNK)  # the whole object is downloaded and verified before this returns
        with other_cache.open(MD5, len(BODY), source, label="k") as other:
            got = read_all(other)
        rest_of_owner = read_all(owner)
    assert first + rest_of_owner == BODY and got == BODY
    assert source.fetches == 1


def test_when_the_owner_stops_before_reading_a_waiting_reader_takes_over(tmp_path: Path) -> None:
    source = Source()
    owner_cache, follower_cache = ObjectCache(tmp_path), ObjectCache(tmp_path)
    with owner_cache.open(MD5, len(BODY), source, label="k"):
        follower_ctx = follower_cache.open(MD5, len(BODY), source, label="k")
        follower = follower_ctx.__enter__()
        assert follower_cache.followed == 1
    # The owner's reader is gone before reading: its lock is freed, nothing of it is left.
    assert not owner_cache.parts(MD5)
    got = read_all(follower)
    follower_ctx.__exit__(None, None, None)
    assert got == BODY
    assert source.fetches == 2 and follower_cache.downloads == 1
    follower_cache.settle()
    assert owner_cache.path(MD5).read_bytes() == BODY


@SIZES
def test_bytes_that_do_not_hash_to_the_md5_are_refused_and_not_cached(tmp_path: Path, size: int | None) -> None:
    cache = ObjectCache(tmp_path)
    corrupt = bytearray(BODY)
    corrupt[5] ^= 1
    with pytest.raises(PermanentStoreError, match="md5"), cache.open(MD5, size, Source(bytes(corrupt)),
                                                                         label="k") as stream:
        read_all(stream)
    assert not cache.path(MD5).exists() and not cache.parts(MD5)


def test_a_killed_owners_part_file_is_replaced_never_used(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path)
    part = cache.path(MD5).with_name(f"{MD5}.1-dead.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage from a process killed mid-download")
    with cache.open(MD5, len(BODY), Source(), label="k") as stream:
        assert read_all(stream) == BODY
    cache.settle()
    assert cache.path(MD5).read_bytes() == BODY and not part.exists()


def test_least_recently_used_objects_are_evicted_to_the_limit(tmp_path: Path) -> None:
    bodies = [os.urandom(1000) for _ in range(3)]
    md5s = [hashlib.md5(b).hexdigest() for b in bodies]
    cache = ObjectCache(tmp_path, limit=2500)
    for i, (body, md5) in enumerate(zip(bodies, md5s, strict=True)):
        with cache.open(md5, len(body), Source(body), label="k") as stream:
            read_all(stream)
        cache.settle()
        time.sleep(0.02)  # mtimes apart
        if i == 1:  # object 0 is used again: it becomes more recent than object 1
            with cache.open(md5s[0], 1000, Source(bodies[0]), label="k") as stream:
                read_all(stream)
    present = [cache.path(m).exists() for m in md5s]
    assert present == [True, False, True]  # 1 was the least recently used, though 0 is older


def test_sizes() -> None:
    assert parse_size("20GiB") == 20 * 2**30
    assert parse_size("500 MB") == 500 * 10**6
    assert parse_size(1024) == 1024
    assert parse_size("1.5KiB") == 1536
    with pytest.raises(ValueError, match="20GiB"):
        parse_size("lots")


def test_the_reader_goes_on_while_the_copy_is_made_durable_and_no_one_sees_it_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        assert synced.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)  # the same module object the cache calls
    owner, other, source = ObjectCache(tmp_path), ObjectCache(tmp_path), Source()
    with owner.open(MD5, len(BODY), source, label="k") as stream:
        assert read_all(stream) == BODY  # verified, not yet durable: the reader is not kept waiting
    assert not owner.path(MD5).exists() and len(owner.parts(MD5)) == 1
    # Meanwhile another reader waits for the verified copy (the lock is still held) and fetches nothing.
    got: list[bytes] = []

    def other_reader() -> None:
        with other.open(MD5, len(BODY), source, label="k") as stream:
            got.append(read_all(stream))

    waiting = threading.Thread(target=other_reader)
    waiting.start()
    synced.set()
    waiting.join(timeout=60)
    owner.settle()
    assert got == [BODY]
    assert owner.path(MD5).read_bytes() == BODY and not owner.parts(MD5)
    assert source.fetches == 1 and owner.downloads == 1


def test_a_big_download_is_flushed_to_disk_as_it_is_written_not_all_at_the_end(tmp_path: Path) -> None:
    """The fsync that makes a cached copy durable ends the reader's pass; left all to the end, flushing a 1 GiB
    copy held that end for seconds. The writer flushes every SYNC_EVERY bytes while the download goes on."""
    body = os.urandom(5 * CHUNK + 17)  # above INLINE_MAX: written on the helper thread
    md5 = hashlib.md5(body).hexdigest()
    cache = ObjectCache(tmp_path)
    with mock.patch.object(cache_module, "SYNC_EVERY", CHUNK), \
            mock.patch.object(os, "fdatasync", wraps=os.fdatasync) as flushed:
        with cache.open(md5, len(body), CountingSource(body), label="big") as stream:
            assert read_all(stream) == body
        during = flushed.call_count
        cache.settle()
    assert during >= 4
    assert cache.use(md5, len(body)) is not None
