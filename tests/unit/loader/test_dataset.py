"""Objects are opened one ahead of the reader: what that must never change."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO, cast
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.loader import cache as cache_module
from reconciler.loader import dataset as dataset_module
from reconciler.loader import index
from reconciler.loader.cache import ObjectCache
from reconciler.loader.dataset import DatasetChanged, StreamingDataset
from reconciler.loader.formats import RecordFormat
from reconciler.loader.index import IndexStore
from reconciler.loader.resolve import SourceObject
from reconciler.stores.base import PermanentStoreError
from reconciler.stores.memory import MemoryStore
from tests.unit.loader.test_sharding import make_store
from tests.unit.loader.test_warm import calls_per_item


def big_object() -> tuple[MemoryStore, bytes, SourceObject]:
    """A JSON Lines object of 2,000 records (~140 KB: many spans of 8 KiB) in a store of its own."""
    store = MemoryStore("mem")
    body = b"".join(json.dumps({"id": i, "pad": "x" * 50}).encode() + b"\n" for i in range(2000))
    store.put("big.jsonl", body)
    return store, body, SourceObject("mem", "big.jsonl", hashlib.md5(body).hexdigest(), len(body), RecordFormat.JSONL)


def watched_open(store: MemoryStore, seen: Callable[[bytes], None]) -> Callable[..., Any]:
    """`store.open` whose streams show the bytes of each read to `seen`, on the thread that reads them."""
    opened = store.open

    @contextlib.contextmanager
    def open_(key: str, *, if_match: str | None = None) -> Iterator[io.RawIOBase]:
        with opened(key, if_match=if_match) as stream:

            class Reading(io.RawIOBase):
                def readable(self) -> bool:
                    return True

                def read(self, n: int | None = -1) -> bytes:
                    data: bytes = stream.read(-1 if n is None else n)
                    seen(data)
                    return data

            yield Reading()

    return open_


def test_stopping_early_releases_the_object_opened_ahead(tmp_path: Path) -> None:
    store, objects = make_store([5, 5, 5])
    cache = ObjectCache(tmp_path / "cache")
    records = iter(StreamingDataset(objects, {"mem": store}, cache=cache, worker_info=lambda: None))
    assert next(records)["id"] == "0-0"  # object 1 is being opened meanwhile: its lock taken, its part begun
    records.close()  # type: ignore[attr-defined]
    cache.settle()
    assert not list((tmp_path / "cache").rglob("*.part"))
    for obj in objects:
        lock = ObjectCache(tmp_path / "cache").lock(str(obj.md5))
        lock.acquire(timeout=0)  # free: no reader of this process holds it any more
        lock.release()


def test_a_failure_opening_the_next_object_comes_after_every_record_of_the_current_one(tmp_path: Path) -> None:
    store, listed = make_store([4, 4])
    objects = [dataclasses.replace(o, records=4) for o in listed]  # counted by a manifest: nothing read up front
    store.delete(objects[1].key)
    got: list[str] = []
    with pytest.raises(PermanentStoreError, match="does not exist"):
        for record in StreamingDataset(objects, {"mem": store}, cache=ObjectCache(tmp_path), worker_info=lambda: None):
            got.append(record["id"])
    assert got == ["0-0", "0-1", "0-2", "0-3"]


def test_the_cache_counts_every_object_once_though_two_threads_open_them(tmp_path: Path) -> None:
    sizes = [3] * 40
    store, objects = make_store(sizes)
    cold = StreamingDataset(objects, {"mem": store}, cache=ObjectCache(tmp_path), worker_info=lambda: None)
    # Iterated, not list()ed: list() asks len() first, which counts every object's records before the first.
    assert sum(1 for _ in cold) == sum(sizes)
    warm = StreamingDataset(objects, {"mem": store}, cache=ObjectCache(tmp_path), worker_info=lambda: None)
    assert sum(1 for _ in warm) == sum(sizes)
    assert cold.cache is not None and warm.cache is not None
    assert (cold.cache.downloads, cold.cache.hits, warm.cache.downloads, warm.cache.hits) == (40, 0, 0, 40)


def test_an_object_missing_before_the_first_record_fails_then_naming_it(tmp_path: Path) -> None:
    """Record counts are needed before the first record: an object that cannot be counted fails up front."""
    store, objects = make_store([4, 4])
    store.delete(objects[1].key)
    ds = StreamingDataset(objects, {"mem": store}, cache=ObjectCache(tmp_path), rank=0, world_size=2,
                          worker_info=lambda: None)
    records = iter(ds)
    with pytest.raises(PermanentStoreError, match=r"shards/001.jsonl"):
        next(records)


def test_one_consumer_reads_a_fresh_epoch_without_counting_first_and_its_state_resumes_resharded(
    tmp_path: Path,
) -> None:
    """A lone reader streams at once (no pass to count records); its progress still means the same slots."""
    store, objects = make_store([5, 0, 7, 4])
    cache = ObjectCache(tmp_path)
    alone = StreamingDataset(objects, {"mem": store}, cache=cache, shuffle=True, shuffle_block=4,
                             worker_info=lambda: None)
    records = iter(alone)
    got = [next(records)["id"] for _ in range(6)]
    assert alone._units is None and not list(tmp_path.rglob("*.json"))  # nothing counted, no index built
    state = alone.state_dict()
    records.close()  # type: ignore[attr-defined]
    rest = []
    for rank in range(2):
        ds = StreamingDataset(objects, {"mem": store}, cache=cache, shuffle=True, shuffle_block=4, rank=rank,
                              world_size=2, worker_info=lambda: None)
        ds.load_state_dict(state)
        rest += [r["id"] for r in ds]
    assert sorted(got + rest) == sorted(f"{i}-{j}" for i, n in enumerate([5, 0, 7, 4]) for j in range(n))


def test_a_warm_pass_over_shards_asks_s3_once_per_prefix_and_still_refuses_an_object_changed_since(
    tmp_path: Path,
) -> None:
    store, objects = make_store([3] * 6)
    ds = StreamingDataset(objects, {"mem": store}, cache=ObjectCache(tmp_path), worker_info=lambda: None)
    assert sum(1 for _ in ds) == 18  # cold: each object by a GET pinned to its md5, no HEAD
    with mock.patch.object(store, "stat", wraps=store.stat) as stat, \
            mock.patch.object(store, "list", wraps=store.list) as listing:
        assert sum(1 for _ in ds) == 18
        assert ds.cache is not None and ds.cache.hits == 6
        assert (stat.call_count, listing.call_count) == (0, 1)  # one listing of shards/, no HEAD per shard
        store.put(objects[4].key, b'{"id": "new"}\n')
        got: list[str] = []
        with pytest.raises(DatasetChanged, match=r"shards/004\.jsonl: the object changed"):
            for record in ds:
                got.append(record["id"])
        assert listing.call_count == 2  # each pass lists again
    assert got == [f"{i}-{j}" for i in range(4) for j in range(3)]


def test_a_lone_stream_stopped_early_leaves_no_part_file_and_a_whole_one_leaves_the_verified_copy(
    tmp_path: Path,
) -> None:
    store, body, obj = big_object()
    with mock.patch.object(index, "SPAN_BYTES", 8 * 1024):
        IndexStore(tmp_path / "indexes").put(index.build(io.BytesIO(body), key=obj.key, fmt=obj.fmt, split=True),
                                             obj.fmt)
        cache = ObjectCache(tmp_path / "cache")
        ds = StreamingDataset([obj], {"mem": store}, cache=cache, index_dir=tmp_path / "indexes",
                              worker_info=lambda: None)
        records = iter(ds)
        assert next(records)["id"] == 0
        records.close()  # type: ignore[attr-defined]
        cache.settle()
        assert not list((tmp_path / "cache").rglob("*.part")) and not cache.has(str(obj.md5))
        lock = cache.lock(str(obj.md5))
        lock.acquire(timeout=0)  # free: the stopped stream let it go
        lock.release()
        assert [r["id"] for r in ds] == list(range(2000))
        cache.settle()
        assert cache.use(str(obj.md5), len(body)) is not None and cache.downloads == 1


def test_a_span_fetched_ahead_that_fails_fails_after_every_record_of_the_span_before_it(tmp_path: Path) -> None:
    store, body, obj = big_object()
    with mock.patch.object(index, "SPAN_BYTES", 8 * 1024):
        built = index.build(io.BytesIO(body), key=obj.key, fmt=obj.fmt, split=True)
        IndexStore(tmp_path).put(built, obj.fmt)
        bad = built.spans[2]
        fetch = StreamingDataset._fetch_span

        def failing(self: StreamingDataset, what: SourceObject, span: index.Span, *run: Any) -> bytes:
            if span == bad:
                raise PermanentStoreError("span 2 is unreadable", code="BadDigest")
            return fetch(self, what, span, *run)

        got: list[int] = []
        with mock.patch.object(StreamingDataset, "_fetch_span", failing), \
                pytest.raises(PermanentStoreError, match="span 2 is unreadable"):
            for record in StreamingDataset([obj], {"mem": store}, rank=0, world_size=2, index_dir=tmp_path,
                                           worker_info=lambda: None):
                got.append(record["id"])
    assert got == list(range(built.spans[0].records + built.spans[1].records))


def test_a_warm_pass_opens_no_object_on_a_helper_thread(tmp_path: Path) -> None:
    """Opening a cached copy is local work: handed to the open-ahead thread, each shard of a warm pass waited
    for the GIL to come back. A cold pass still opens (sends the GET for) the next object ahead."""
    store, objects = make_store([3] * 6)
    ahead: list[str] = []
    real = dataset_module._OpenAhead.ahead

    def counted(self: Any, obj: SourceObject) -> None:
        ahead.append(obj.key)
        real(self, obj)

    with mock.patch.object(dataset_module._OpenAhead, "ahead", counted):
        cold = StreamingDataset(objects, {"mem": store}, cache=ObjectCache(tmp_path), worker_info=lambda: None)
        assert sum(1 for _ in cold) == 18
        assert ahead == [o.key for o in objects[1:]]
        ahead.clear()
        warm = StreamingDataset(objects, {"mem": store}, cache=ObjectCache(tmp_path), worker_info=lambda: None)
        assert sum(1 for _ in warm) == 18
    assert ahead == []
    assert warm.cache is not None and warm.cache.hits == 6


def test_a_lone_stream_hashes_each_byte_once_and_its_cached_copy_is_the_object(tmp_path: Path) -> None:
    """Each span is checked against the index's SHA-256 before its records are used; the cache does not hash the
    whole object again on the way in (that was a second md5 of every byte on two cores), and what it keeps is
    still exactly the object: a hash of it all, as verify="always" makes, agrees."""
    store, body, obj = big_object()
    hashed = [0]
    real = hashlib.md5

    class Counting:
        def __init__(self, data: bytes = b"") -> None:
            self._md5 = real(data)
            hashed[0] += len(data)

        def update(self, data: bytes) -> None:
            hashed[0] += len(data)
            self._md5.update(data)

        def hexdigest(self) -> str:
            return self._md5.hexdigest()

    with mock.patch.object(index, "SPAN_BYTES", 8 * 1024):
        IndexStore(tmp_path / "indexes").put(index.build(io.BytesIO(body), key=obj.key, fmt=obj.fmt, split=True),
                                             obj.fmt)
        cache = ObjectCache(tmp_path / "cache")
        with mock.patch.object(cache_module, "hashlib", mock.Mock(md5=Counting)):
            ds = StreamingDataset([obj], {"mem": store}, cache=cache, index_dir=tmp_path / "indexes",
                                  worker_info=lambda: None)
            assert [r["id"] for r in ds] == list(range(2000))
    assert hashed[0] == 0
    assert cache.downloads == 1
    checked = ObjectCache(tmp_path / "cache", verify="always").use(str(obj.md5), len(body))
    assert checked is not None
    with checked:
        assert checked.read() == body


def test_an_object_whose_etag_is_no_md5_is_read_by_the_etag_resolution_saw_without_a_412_and_a_head(
    tmp_path: Path,
) -> None:
    store = MemoryStore("mem")
    body = b"".join(json.dumps({"id": i}).encode() + b"\n" for i in range(5))
    store.put("multi.jsonl", body, foreign=True)  # a multipart ETag; the md5 known from elsewhere (metadata)
    entry = store.stat("multi.jsonl")
    assert entry is not None and entry.md5 is None
    obj = SourceObject("mem", "multi.jsonl", hashlib.md5(body).hexdigest(), len(body), RecordFormat.JSONL,
                       etag=entry.etag)
    with mock.patch.object(store, "stat", wraps=store.stat) as stat, \
            mock.patch.object(store, "open", wraps=store.open) as opened:
        ds = StreamingDataset([obj], {"mem": store}, cache=ObjectCache(tmp_path), worker_info=lambda: None)
        assert [r["id"] for r in ds] == list(range(5))
    assert stat.call_count == 0
    assert [c.kwargs.get("if_match") for c in opened.call_args_list] == [entry.etag]
    store.put("multi.jsonl", body.replace(b'"id": 4', b'"id": 9'), foreign=True)  # changed: refused, not served
    got: list[int] = []
    with pytest.raises(PermanentStoreError, match="expected 50 bytes with md5"):
        for record in StreamingDataset([obj], {"mem": store}, cache=ObjectCache(tmp_path / "other"),
                                       worker_info=lambda: None):
            got.append(record["id"])
    assert got == []


def test_a_lone_reader_downloads_and_hashes_its_object_on_two_threads_apart_from_the_decoding(tmp_path: Path) -> None:
    """Downloading and hashing on one helper thread held a cold read to the sum of both: the object's bytes are
    read on one thread, the spans hashed on another, records decoded on the caller's; none is used unverified."""
    store, body, obj = big_object()
    with mock.patch.object(index, "SPAN_BYTES", 8 * 1024):
        built = index.build(io.BytesIO(body), key=obj.key, fmt=obj.fmt, split=True)
        IndexStore(tmp_path).put(built, obj.fmt)
        readers: set[str] = set()
        hashers: set[str] = set()
        open_ = watched_open(store, lambda _: readers.add(threading.current_thread().name))
        real_sha256 = hashlib.sha256

        def sha256(data: bytes = b"") -> Any:
            hashers.add(threading.current_thread().name)
            return real_sha256(data)

        hashing = SimpleNamespace(sha256=sha256)
        with mock.patch.object(store, "open", open_), mock.patch.object(index, "hashlib", hashing):
            got = [r["id"] for r in StreamingDataset([obj], {"mem": store}, index_dir=tmp_path,
                                                     worker_info=lambda: None)]
    assert got == list(range(2000))
    me = threading.current_thread().name
    assert readers and hashers and not readers & hashers and me not in readers | hashers


def test_a_record_costs_a_bounded_number_of_calls_on_its_way_out(tmp_path: Path) -> None:
    """The per-record path of a plain JSON Lines read (split, pick, slot, decode, count): each Python step a record
    cost a warm pass about as much as orjson's own parse. Counted, not timed: function calls (Python and
    built-in) made while iterating, over the records yielded."""
    store = MemoryStore("mem")
    body = b"".join(json.dumps({"id": i, "text": "a few words"}).encode() + b"\n" for i in range(5000))
    store.put("part.jsonl", body)
    obj = SourceObject("mem", "part.jsonl", hashlib.md5(body).hexdigest(), len(body), RecordFormat.JSONL)
    records = iter(StreamingDataset([obj], {"mem": store}, worker_info=lambda: None))
    assert next(records) == {"id": 0, "text": "a few words"}  # the object fetched and verified: not counted
    rest, calls = calls_per_item(records)
    assert rest == 4999
    assert calls < 7.1, f"{calls:.2f} calls a record"  # 14.0 before


def test_a_span_repeated_in_a_shorter_run_never_reads_past_the_range_asked_for() -> None:
    """Padding wraps a consumer's share around: spans 0, 1, 2 then 0, 1 again. Span 0 maps to the end of the
    later (shorter) run, so the stream opened for it ends after span 1: span 2 must open a range of its own,
    not read past that one's end (short bytes, a BadDigest for a sound object)."""
    body = b"".join(json.dumps({"id": i}).encode() + b"\n" for i in range(30))
    spans = [index.Span(a, b, 0, 0, hashlib.md5(body[a:b]).hexdigest(), hashlib.sha256(body[a:b]).hexdigest())
             for a, b in ((0, 100), (100, 200), (200, 300))]
    obj = SourceObject("mem", "big.jsonl", None, len(body), RecordFormat.JSONL)
    units = [dataset_module.Unit(0, 1, spans[i]) for i in (0, 1, 2, 0, 1)]
    stops = dataset_module.run_stops(units, [obj])
    opened: list[tuple[int, int]] = []

    @contextlib.contextmanager
    def open_range(what: SourceObject, start: int, stop: int) -> Iterator[io.BytesIO]:
        opened.append((start, stop))
        yield io.BytesIO(body[start:stop])

    with dataset_module._Runs(stops, open_range) as runs:
        got = [runs.read(obj, spans[i]) for i in (0, 1, 2, 0, 1)]
    assert got == [body[s.start : s.stop] for s in (spans[i] for i in (0, 1, 2, 0, 1))]
    assert opened[0] == (0, 200) and len(opened) == 3  # 0-1, then 2 on its own, then 0-1 again


def test_a_lone_stream_hands_each_span_between_its_threads_whole(tmp_path: Path) -> None:
    """Every hand-over costs a helper thread the GIL back from the decoding one: a span is read off the stream in
    one call and hashed in one, not a piece at a time (1 MiB pieces made four hand-overs a 4 MiB span). Counted
    with pieces made small (64 bytes), where the pieces were dozens a span; the records and their order stay."""
    store, body, obj = big_object()
    with mock.patch.object(index, "SPAN_BYTES", 8 * 1024):
        built = index.build(io.BytesIO(body), key=obj.key, fmt=obj.fmt, split=True)
        IndexStore(tmp_path).put(built, obj.fmt)
        reads: list[int] = []
        hashed: list[int] = []
        open_ = watched_open(store, lambda data: reads.append(len(data)))
        real_sha256 = hashlib.sha256

        class Sha256:
            def __init__(self, data: bytes = b"") -> None:
                self._sha = real_sha256(data)
                if data:
                    hashed.append(len(data))

            def update(self, data: bytes) -> None:
                hashed.append(len(data))
                self._sha.update(data)

            def hexdigest(self) -> str:
                return self._sha.hexdigest()

        with mock.patch.object(store, "open", open_), mock.patch.object(dataset_module, "CHUNK", 64), \
                mock.patch.object(index, "hashlib", SimpleNamespace(sha256=Sha256)):
            got = [r["id"] for r in StreamingDataset([obj], {"mem": store}, index_dir=tmp_path,
                                                     worker_info=lambda: None)]
    assert got == list(range(2000))
    spans = [s.stop - s.start for s in built.spans]
    assert reads == [*spans, 0]  # then one read past the end: the object is no longer than its index says
    assert hashed == spans


class _Trickle(io.RawIOBase):
    """A stream that gives at most the next of `sizes` bytes a read (a body off a socket, or resumed midway)."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data, self._sizes, self._at = data, sizes, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        most = self._sizes.pop(0) if self._sizes else len(self._data)
        want = len(self._data) if n is None or n < 0 else n
        out = self._data[self._at : self._at + min(want, most)]
        self._at += len(out)
        return out


@given(
    data=st.binary(max_size=300),
    sizes=st.lists(st.integers(1, 40), max_size=30),
    cuts=st.lists(st.integers(0, 120), min_size=1, max_size=6),
)
def test_read_exactly_gives_the_size_asked_whatever_the_reads_return_and_less_only_at_the_end(
    data: bytes, sizes: list[int], cuts: list[int]
) -> None:
    stream = cast(BinaryIO, _Trickle(data, sizes))
    at = 0
    for size in cuts:
        got = dataset_module.read_exactly(stream, size)
        assert got == data[at : at + size]
        at += len(got)


def test_small_objects_are_opened_several_ahead_at_once_and_read_in_order(tmp_path: Path) -> None:
    """One object opened ahead left a reader of 1 MiB shards waiting for each next response about half its time:
    the next OPEN_AHEAD objects are opened at once, each on a helper thread, while the current one is read. Shown
    without a clock: the opens of objects 1-3 are held until all three are under way together."""
    store, objects = make_store([3] * 6)
    ahead = 3  # OPEN_AHEAD
    opened = store.open
    under_way: list[str] = []
    together = threading.Event()
    lock = threading.Lock()

    @contextlib.contextmanager
    def open_(key: str, *, if_match: str | None = None) -> Iterator[Any]:
        if key in {o.key for o in objects[1 : 1 + ahead]}:
            with lock:
                under_way.append(key)
                if len(under_way) == ahead:
                    together.set()
            # Bounds a failure only: with fewer opened at once, the third never comes and this gives up.
            together.wait(30)
        with opened(key, if_match=if_match) as stream:
            yield stream

    with mock.patch.object(store, "open", open_):
        records = iter(StreamingDataset(objects, {"mem": store}, cache=ObjectCache(tmp_path),
                                        worker_info=lambda: None))
        assert next(records)["id"] == "0-0"
        assert together.wait(30), f"opened at once while object 0 is read: {under_way}"
        rest = [r["id"] for r in records]
    assert rest == [f"{i}-{j}" for i in range(6) for j in range(3)][1:]


@settings(max_examples=30, deadline=None)
@given(at=st.integers(0, 139_999), cut=st.booleans())
def test_a_lone_stream_yields_exactly_the_spans_before_a_changed_or_missing_byte(at: int, cut: bool) -> None:
    """Wherever the stream's bytes go wrong (a byte flipped, or the body ends there), every record of each span
    before it is yielded and none of its span or after: BadDigest, and nothing of it left in the cache."""
    store, body, obj = big_object()
    at %= len(body)
    bad = body[:at] if cut else body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(index, "SPAN_BYTES", 8 * 1024):
        built = index.build(io.BytesIO(body), key=obj.key, fmt=obj.fmt, split=True)
        IndexStore(Path(tmp) / "indexes").put(built, obj.fmt)
        wrong = next(s for s in built.spans if s.start <= at < s.stop)
        opened = store.open

        @contextlib.contextmanager
        def open_(key: str, *, if_match: str | None = None) -> Iterator[io.BytesIO]:
            with opened(key, if_match=if_match):
                yield io.BytesIO(bad)

        got: list[int] = []
        cache = ObjectCache(Path(tmp) / "cache")
        with mock.patch.object(store, "open", open_), pytest.raises(PermanentStoreError) as raised:
            for record in StreamingDataset([obj], {"mem": store}, cache=cache, index_dir=Path(tmp) / "indexes",
                                           worker_info=lambda: None):
                got.append(record["id"])
        cache.settle()
        assert raised.value.code == "BadDigest"
        assert got == list(range(sum(s.records for s in built.spans if s.stop <= wrong.start)))
        assert not [p for p in (Path(tmp) / "cache" / "objects").rglob("*") if p.is_file()]
