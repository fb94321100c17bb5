"""Issue 23 items 2-4: the verified cache and uncached reads never hand on bytes that are not the object's.

2. A cached copy changed on disk (edited with its mtime put back, truncated at a line boundary, replaced
   by a symlink) is caught at the next hit, dropped and fetched again.
3. The cache cleared while a reader downloads: a second reader's half-written part is never renamed
   into place by the first.
4. An object overwritten after it was pinned (a multipart upload: its ETag is no md5) yields no record,
   read uncached (cache_limit below its size) or through the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from reconciler.commands.apply import apply
from reconciler.loader import load_dataset
from reconciler.loader.cache import CHUNK, ObjectCache
from reconciler.stores.base import StoreError
from tests.hostile.loader_world import PROCESSED, jsonl, loader_world, rows
from tests.hostile.test_loader_resume_state import multipart_put
from tests.integration.final_world import FinalWorld
from tests.integration.final_world import jsonl as final_jsonl
from tests.integration.final_world import records as final_records
from tests.integration.pixelenv import pixel
from tests.unit.loader.sources import CountingSource

LINES = jsonl(rows("r", 40000))  # about 1.3 MiB of JSON Lines: more than one chunk
MD5 = hashlib.md5(LINES).hexdigest()


class Source(CountingSource):
    def __init__(self, body: bytes = LINES) -> None:
        super().__init__(body)


def read_all(stream: BinaryIO) -> bytes:
    parts = []
    while data := stream.read(CHUNK):
        parts.append(data)
    return b"".join(parts)


def cached(root: Path) -> ObjectCache:
    """A cache holding the verified copy of LINES."""
    cache = ObjectCache(root)
    with cache.open(MD5, len(LINES), Source(), label="k") as stream:
        assert read_all(stream) == LINES
    cache.settle()
    assert cache.path(MD5).read_bytes() == LINES
    return cache


# --- 2: cache hits are re-checked ------------------------------------------------------------------------


def edit_keeping_size_and_mtime(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[100:104] = b"XXXX" if data[100:104] != b"XXXX" else b"YYYY"
    with open(path, "r+b") as handle:  # the same inode, the same size
        handle.write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def truncate_at_a_line_boundary(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"\n", len(data) // 2) + 1])


def replace_with_a_symlink(path: Path) -> None:
    elsewhere = path.parent.parent.parent / "elsewhere.jsonl"
    elsewhere.write_bytes(LINES.replace(b"record", b"RECORD"))
    path.unlink()
    path.symlink_to(elsewhere)


TAMPERS = [edit_keeping_size_and_mtime, truncate_at_a_line_boundary, replace_with_a_symlink]


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.__name__ for t in TAMPERS])
def test_a_cached_copy_changed_on_disk_is_dropped_and_fetched_again(tmp_path: Path, tamper: Any) -> None:
    cached(tmp_path)
    tamper(ObjectCache(tmp_path).path(MD5))
    source = Source()
    cache = ObjectCache(tmp_path)
    with cache.open(MD5, len(LINES), source, label="k") as stream:
        assert read_all(stream) == LINES
    cache.settle()
    assert source.fetches == 1  # the tampered copy was not a hit
    assert not cache.path(MD5).is_symlink() and cache.path(MD5).read_bytes() == LINES
    with ObjectCache(tmp_path).open(MD5, len(LINES), source, label="k") as stream:  # healed: a hit again
        assert read_all(stream) == LINES
    assert source.fetches == 1


def test_verify_always_hashes_every_hit_and_an_unchanged_stat_is_trusted_otherwise(tmp_path: Path) -> None:
    cached(tmp_path)
    for verify, rehashed in (("stat", 0), ("always", 2)):
        cache = ObjectCache(tmp_path, verify=verify)  # type: ignore[arg-type]
        for _ in range(2):
            with cache.open(MD5, len(LINES), Source(b"never fetched"), label="k") as stream:
                assert read_all(stream) == LINES
        assert (cache.hits, cache.rehashed) == (2, rehashed)


@pytest.mark.slow
@pytest.mark.integration
def test_load_dataset_and_pixel_cat_refetch_a_cached_copy_truncated_at_a_line_boundary(
    tmp_path: Path, seaweed: Any, bucket: str, aws_env: dict[str, str]
) -> None:
    world = loader_world(tmp_path, seaweed.endpoint, seaweed.client(), bucket, aws_env)
    md5 = world.put(f"{PROCESSED}cot/lines.jsonl", LINES)
    first = load_dataset("lines.jsonl", specs=world.specs, cache_dir=world.cache)
    assert len(list(first)) == 40000
    truncate_at_a_line_boundary(ObjectCache(world.cache).path(md5))
    assert len(list(load_dataset("lines.jsonl", specs=world.specs, cache_dir=world.cache))) == 40000
    replace_with_a_symlink(ObjectCache(world.cache).path(md5))
    cat = pixel(["cat", "lines.jsonl", "--specs", str(world.specs)], world.cli_env())
    assert cat.code == 0, cat.err
    assert cat.out.count("\n") == 40000 and "RECORD" not in cat.out


# --- 3: the cache cleared mid-download ----------------------------------------------------------------------


class Paused:
    """fetch() whose stream hands out `head` bytes, then waits for `go` before the rest."""

    def __init__(self, head: int) -> None:
        self.head = head
        self.reached = threading.Event()
        self.go = threading.Event()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[BinaryIO]:
        paused = self

        class Stream(io.RawIOBase):
            position = 0

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                if self.position >= paused.head:
                    paused.reached.set()
                    assert paused.go.wait(60)
                end = len(LINES) if self.position >= paused.head else paused.head
                data = LINES[self.position : min(end, self.position + len(buffer))]
                buffer[: len(data)] = data
                self.position += len(data)
                return len(data)

        yield io.BufferedReader(Stream(), buffer_size=64 * 1024)


def test_a_reader_never_renames_another_readers_half_written_part_after_the_cache_is_cleared(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cache"
    a_source, b_source = Paused(CHUNK), Paused(CHUNK // 2)
    got: dict[str, bytes | BaseException] = {}

    def reader(name: str, source: Paused) -> None:
        try:
            with ObjectCache(root).open(MD5, len(LINES), source, label="k") as stream:
                got[name] = read_all(stream)
        except BaseException as exc:
            got[name] = exc

    a = threading.Thread(target=reader, args=("a", a_source))
    a.start()
    assert a_source.reached.wait(60)  # A has written a part, and is downloading on
    shutil.rmtree(root)  # the cache cleared under it
    b = threading.Thread(target=reader, args=("b", b_source))
    b.start()
    assert b_source.reached.wait(60)  # B owns the object now, half written, and stops there
    a_source.go.set()
    a.join(60)
    ObjectCache(root).settle()
    import reconciler.loader.cache as cache_module

    cache_module._finisher().submit(lambda: None).result()  # A's rename (or its refusal) has happened
    final = ObjectCache(root).path(MD5)
    assert got["a"] == LINES
    assert not final.exists() or final.read_bytes() == LINES, "A renamed B's half-written part into place"
    b_source.go.set()
    b.join(60)
    assert got["b"] == LINES
    source = Source(b"must not be fetched")
    with ObjectCache(root).open(MD5, len(LINES), source, label="k") as stream:
        assert read_all(stream) == LINES


# --- 4: an overwritten object yields no record ------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("cache_limit", [1, None], ids=["uncached", "cached"])
def test_an_object_overwritten_after_it_was_pinned_yields_no_record(
    tmp_path: Path, seaweed: Any, bucket: str, aws_env: dict[str, str], cache_limit: int | None
) -> None:
    world = loader_world(tmp_path, seaweed.endpoint, seaweed.client(), bucket, aws_env)
    key = f"{PROCESSED}cot/shard.jsonl"
    world.put(key, LINES)
    ds = load_dataset("shard.jsonl", specs=world.specs, cache_dir=world.cache, cache_limit=cache_limit)
    assert ds.objects[0].md5 == MD5  # pinned at resolution
    foreign = LINES.replace(b'"r-', b'"F-')  # the same size, other records, and an ETag that is no md5
    multipart_put(world.client, bucket, key, foreign)
    yielded: list[dict[str, Any]] = []
    with pytest.raises(StoreError, match=r"shard\.jsonl.*md5"):
        for record in ds:
            yielded.append(record)
    assert yielded == [], f"{len(yielded)} records of the foreign object were yielded before the error"
    assert not ObjectCache(world.cache).path(MD5).exists()


def published_final(tmp_path: Path, endpoint: str, client: Any, bucket: str) -> FinalWorld:
    world = FinalWorld(tmp_path / "disk", tmp_path / "specs", bucket, endpoint, client)
    world.root.mkdir()
    world.put_source("a", final_jsonl(final_records("a", 150)))
    world.put_source("b", final_jsonl(final_records("b", 80, start=1000)))
    world.put_source("c", final_jsonl(final_records("c", 10, start=5000)))
    world.write_specs(["a", "b"])
    assert apply(world.specs, auto_approve=True, parallelism=2) == 0
    return world


@pytest.mark.integration
@pytest.mark.parametrize("cache_limit", [1, None], ids=["uncached", "cached"])
def test_a_published_shard_overwritten_by_a_multipart_upload_yields_no_foreign_record(
    tmp_path: Path, seaweed: Any, bucket: str, s3_client: Any, aws_env: dict[str, str], cache_limit: int | None
) -> None:
    """The issue's own case: load_dataset("final_dataset", cache_limit=1) yielded the foreign record."""
    world = published_final(tmp_path, seaweed.endpoint, s3_client, bucket)
    shard = world.manifest()["shards"][0]
    body = world.get(shard["key"])
    first = json.loads(body.splitlines()[0])
    foreign = body.replace(first["id"].encode(), b"X" * len(first["id"]), 1)  # the same size
    multipart_put(s3_client, bucket, shard["key"], foreign)
    ds = load_dataset("final_dataset", world.specs, split=shard["split"], cache_dir=tmp_path / "cache",
                      cache_limit=cache_limit)
    yielded: list[str] = []
    with pytest.raises(StoreError, match=shard["key"]):
        for record in ds:
            yielded.append(record["id"])
    assert yielded == [] and "X" * len(first["id"]) not in yielded
