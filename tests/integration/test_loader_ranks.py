"""Each rank reads only its share: one big object split by byte range over ranks on SeaweedFS, bytes counted."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from reconciler.loader import DatasetChanged, index
from reconciler.loader.dataset import StreamingDataset
from reconciler.loader.resolve import SourceObject, resolve
from reconciler.loader.storeset import StoreSet
from reconciler.spec import load_desired
from reconciler.stores.base import PermanentStoreError
from tests.faults.proxy import FaultProxy
from tests.integration.test_loader import PROCESSED, write_world_specs

pytestmark = pytest.mark.integration

RECORDS = 20_000
SPAN = 64 * 1024  # 4 MiB spans of a 256 MiB object, in proportion: 80 spans of this 5 MiB one


class CountingProxy(FaultProxy):
    """Forwards everything and counts the body bytes of every GET answer: what the readers downloaded."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, [])
        self.got = 0
        self.gets = 0
        self._count = threading.Lock()

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        answer = super()._forward(method, path, headers, body)
        if method == "GET" and "?" not in path:  # object bodies, not listings
            with self._count:
                self.got += len(answer.partition(b"\r\n\r\n")[2])
                self.gets += 1
        return answer


def big_body() -> bytes:
    return b"".join(
        json.dumps({"id": i, "text": f"record {i} " + "lorem ipsum " * (i % 40)}).encode() + b"\n"
        for i in range(RECORDS)
    )


def ranks(objects: tuple[SourceObject, ...], stores: StoreSet, world: int, index_dir: Path, **kw: Any) -> list[
    StreamingDataset
]:
    """One dataset per rank, as on `world` machines: no object cache shared (none at all), the index shared
    (as apply's derived artefact would be, or a cache directory on shared storage)."""
    return [
        StreamingDataset(objects, stores, rank=r, world_size=world, index_dir=index_dir, worker_info=lambda: None, **kw)
        for r in range(world)
    ]


@pytest.fixture
def big(tmp_path: Path, seaweed: Any, bucket: str, aws_env: dict[str, str]) -> dict[str, Any]:
    body = big_body()
    key = f"{PROCESSED}cot_reasoning/big.jsonl"
    seaweed.client().put_object(Bucket=bucket, Key=key, Body=body, Metadata={"md5": hashlib.md5(body).hexdigest()})
    return {"body": body, "key": key, "tmp": tmp_path, "seaweed": seaweed, "bucket": bucket}


@pytest.mark.parametrize("shuffle", [False, True])
def test_four_ranks_over_one_object_download_it_about_once(big: dict[str, Any], shuffle: bool) -> None:
    tmp = big["tmp"]
    proxy = CountingProxy(big["seaweed"].endpoint)
    with proxy, mock.patch.object(index, "SPAN_BYTES", SPAN):
        specs = write_world_specs(tmp / "specs", endpoint=proxy.endpoint, bucket=big["bucket"])
        desired = load_desired(specs, {})
        stores = StoreSet(desired.stores)
        objects = resolve(desired, stores, "big.jsonl").objects
        # The index, once: here one whole read (apply would write it beside the registry instead).
        counted = ranks(objects, stores, 1, tmp / "indexes")[0]
        assert len(counted) == RECORDS and len(counted.units()) > 40
        indexing, proxy.got, proxy.gets = proxy.got, 0, 0
        assert indexing == len(big["body"])
        world = 4
        parts = [[r["id"] for r in ds] for ds in ranks(objects, stores, world, tmp / "indexes", shuffle=shuffle)]
    size = len(big["body"])
    assert [len(p) for p in parts] == [RECORDS // world] * world
    assert Counter(i for p in parts for i in p) == Counter(range(RECORDS))
    if shuffle:
        assert proxy.gets >= len(counted.units())  # ranged GETs, one a span (a straddling span twice)
    else:
        # Each rank's share is one run of contiguous spans: one ranged GET for all of them (one a span cost
        # SeaweedFS 3x the CPU of serving the object once).
        assert proxy.gets == world
    print(f"\n4 ranks read {proxy.got} bytes of a {size}-byte object in {proxy.gets} GETs: {proxy.got / size:.3f}x")
    assert proxy.got <= 1.1 * size


def test_a_range_of_an_object_changed_since_it_was_indexed_is_never_yielded(big: dict[str, Any]) -> None:
    tmp = big["tmp"]
    with mock.patch.object(index, "SPAN_BYTES", SPAN):
        specs = write_world_specs(tmp / "specs", endpoint=big["seaweed"].endpoint, bucket=big["bucket"])
        desired = load_desired(specs, {})
        stores = StoreSet(desired.stores)
        objects = resolve(desired, stores, "big.jsonl").objects
        assert len(ranks(objects, stores, 1, tmp / "indexes")[0]) == RECORDS
        changed = big["body"].replace(b'"record 5 ', b'"RECORD 5 ')
        big["seaweed"].client().put_object(Bucket=big["bucket"], Key=big["key"], Body=changed,
                                           Metadata={"md5": hashlib.md5(changed).hexdigest()})
        got: list[int] = []
        with pytest.raises(DatasetChanged, match="changed since the dataset was resolved"):
            for record in ranks(objects, stores, 2, tmp / "indexes")[1]:
                got.append(record["id"])
    assert not got


def test_nodes_sharing_an_index_dir_count_an_object_once_and_then_read_only_their_share(
    big: dict[str, Any],
) -> None:
    """load_dataset on two nodes (own caches) with index_dir on storage both see: the first counts the object
    (one whole read, which its cache keeps); the second reads only its half, by range."""
    from reconciler.loader import load_dataset

    tmp = big["tmp"]
    proxy = CountingProxy(big["seaweed"].endpoint)
    with proxy, mock.patch.object(index, "SPAN_BYTES", SPAN):
        specs = write_world_specs(tmp / "specs", endpoint=proxy.endpoint, bucket=big["bucket"])
        node = [
            load_dataset("big.jsonl", specs, rank=r, world_size=2, cache_dir=tmp / f"node{r}",
                         index_dir=tmp / "shared-indexes")
            for r in range(2)
        ]
        first = [r["id"] for r in node[0]]
        by_first, proxy.got = proxy.got, 0
        second = [r["id"] for r in node[1]]
    size = len(big["body"])
    assert by_first == size  # counted in one read; its half then came from the cached copy
    assert proxy.got <= 0.55 * size  # the second node: its half, by range
    assert sorted(first + second) == list(range(RECORDS)) and len(first) == len(second)


def test_ranged_reads_ask_for_their_range_and_a_cut_one_resumes_within_it_pinned_to_the_version(
    big: dict[str, Any],
) -> None:
    from tests.faults.proxy import Fault

    tmp = big["tmp"]
    with mock.patch.object(index, "SPAN_BYTES", 1024 * 1024):
        specs = write_world_specs(tmp / "direct", endpoint=big["seaweed"].endpoint, bucket=big["bucket"])
        desired = load_desired(specs, {})
        objects = resolve(desired, StoreSet(desired.stores), "big.jsonl").objects
        assert len(ranks(objects, StoreSet(desired.stores), 1, tmp / "indexes")[0]) == RECORDS  # counted
        cut = [Fault("cut", method="GET", path=r"big\.jsonl")]
        with FaultProxy(big["seaweed"].endpoint, cut, deadline=60) as proxy:
            specs = write_world_specs(tmp / "proxied", endpoint=proxy.endpoint, bucket=big["bucket"])
            desired = load_desired(specs, {})
            stores = StoreSet(desired.stores)
            # A fresh StoreSet: no HEAD has made a botocore client, so the spans go by the direct GET path.
            parts = [[r["id"] for r in ds] for ds in ranks(objects, stores, 2, tmp / "indexes")]
            gets = [line for line in proxy.log.lines if line.startswith("GET ") and "big.jsonl" in line]
    assert proxy.injected("cut") == 1, gets
    assert sorted(parts[0] + parts[1]) == list(range(RECORDS))
    ranges = [re.search(r"range=bytes=(\d+)-(\d+)", line) for line in gets]
    assert all(r is not None for r in ranges) and all("if-match=" in line for line in gets), gets  # no whole GET
    first, again = ranges[0], ranges[1]  # the cut one, and its resumption: from where it broke, to the same end
    assert first is not None and again is not None
    assert int(first.group(1)) <= int(again.group(1)) < int(first.group(2)) == int(again.group(2)), gets


class TamperingProxy(CountingProxy):
    """Counts like CountingProxy and changes the object's byte at `offset` (not the length) in every GET answer
    that holds it, whole or ranged: what a bad disk, a bad cache box or a bad actor on the path would do."""

    def __init__(self, upstream: str, key: str, offset: int) -> None:
        super().__init__(upstream)
        self.key, self.offset = key, offset
        self.tampered = 0

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        answer = super()._forward(method, path, headers, body)
        if method != "GET" or not path.split("?")[0].endswith(self.key):
            return answer
        asked = re.match(r"bytes=(\d+)-", {k.lower(): v for k, v in headers}.get("range", ""))
        at = self.offset - (int(asked.group(1)) if asked else 0)
        head, _, payload = answer.partition(b"\r\n\r\n")
        if not 0 <= at < len(payload) or b" 20" not in head.split(b"\r\n")[0]:
            return answer
        self.tampered += 1
        return head + b"\r\n\r\n" + payload[:at] + bytes([payload[at] ^ 0x20]) + payload[at + 1 :]


class ReadCounting:
    """A store whose object bodies count the bytes the loader has taken from them so far (the proxy cannot
    tell: it forwards an answer whole); with `allowed`, the bodies end once that many bytes were taken."""

    def __init__(self, store: Any, allowed: int | None = None) -> None:
        self.store = store
        self.taken = 0
        self.allowed = allowed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    @contextlib.contextmanager
    def open(self, key: str, *, if_match: str | None = None) -> Iterator[Any]:
        with self.store.open(key, if_match=if_match) as stream:
            counter = self

            class Counted(io.RawIOBase):
                def readable(self) -> bool:
                    return True

                def read(self, n: int | None = -1) -> bytes:
                    if counter.allowed is not None:
                        left = counter.allowed - counter.taken
                        n = left if n is None or n < 0 else min(n, left)
                    data: bytes = stream.read(n) if n != 0 else b""
                    counter.taken += len(data)
                    return data

            yield Counted()


def lone(objects: tuple[SourceObject, ...], stores: Any, cache: Path, index_dir: Path) -> StreamingDataset:
    from reconciler.loader.cache import ObjectCache

    return StreamingDataset(objects, stores, cache=ObjectCache(cache), index_dir=index_dir, worker_info=lambda: None)


def test_a_lone_reader_of_an_indexed_object_yields_its_first_record_after_reading_a_few_spans(
    big: dict[str, Any],
) -> None:
    """Counted once (one whole, verified read: nothing vouches for its spans before the whole md5 does), the
    object's index is kept; a cold lone read with that index has its first record after a couple of spans."""
    tmp = big["tmp"]
    size = len(big["body"])
    proxy = CountingProxy(big["seaweed"].endpoint)
    with proxy, mock.patch.object(index, "SPAN_BYTES", SPAN):
        specs = write_world_specs(tmp / "specs", endpoint=proxy.endpoint, bucket=big["bucket"])
        desired = load_desired(specs, {})
        stores = StoreSet(desired.stores)
        objects = resolve(desired, stores, "big.jsonl").objects
        assert len(lone(objects, stores, tmp / "first", tmp / "indexes")) == RECORDS
        assert proxy.got == size and index.IndexStore(tmp / "indexes").get(str(objects[0].md5), objects[0].fmt)
        proxy.got = 0
        counting = ReadCounting(stores[objects[0].store])
        records = iter(lone(objects, {objects[0].store: counting}, tmp / "cold", tmp / "indexes"))
        assert next(records)["id"] == 0
        at_first = counting.taken
        rest = [r["id"] for r in records]
    assert rest == list(range(1, RECORDS))
    # The span decoded, two handed over, one being hashed, two downloaded ahead of it and one being read: the
    # rest of the object still unread.
    assert at_first <= 8 * SPAN, f"{at_first} of {size} bytes read before the first record"
    assert counting.taken == size and proxy.got <= 1.01 * size  # then the rest, in one GET


@pytest.mark.parametrize("reader", ["lone", "rank"])  # one whole GET, or ranged GETs of its share
def test_a_span_whose_bytes_do_not_match_its_index_is_never_yielded(big: dict[str, Any], reader: str) -> None:
    from reconciler.loader.cache import ObjectCache

    tmp = big["tmp"]
    with mock.patch.object(index, "SPAN_BYTES", SPAN):
        specs = write_world_specs(tmp / "direct", endpoint=big["seaweed"].endpoint, bucket=big["bucket"])
        desired = load_desired(specs, {})
        objects = resolve(desired, StoreSet(desired.stores), "big.jsonl").objects
        spans = index.build(io.BytesIO(big["body"]), key="big.jsonl", fmt=objects[0].fmt, split=True).spans
        index.IndexStore(tmp / "indexes").put(
            index.RecordIndex(hashlib.md5(big["body"]).hexdigest(), len(big["body"]), RECORDS, spans), objects[0].fmt
        )
        bad = spans[3]
        got: list[int] = []
        proxy = TamperingProxy(big["seaweed"].endpoint, big["key"], big["body"].index(b"record", bad.start))
        with proxy:
            specs = write_world_specs(tmp / "proxied", endpoint=proxy.endpoint, bucket=big["bucket"])
            stores = StoreSet(load_desired(specs, {}).stores)
            with pytest.raises(PermanentStoreError, match=r"expected .* SHA-256") as raised:
                ds = lone(objects, stores, tmp / "cache", tmp / "indexes") if reader == "lone" else StreamingDataset(
                    objects, stores, rank=0, world_size=2, cache=ObjectCache(tmp / "cache"),
                    index_dir=tmp / "indexes", worker_info=lambda: None)
                for record in ds:
                    got.append(record["id"])
    assert proxy.tampered >= 1 and raised.value.code == "BadDigest"
    assert got == list(range(sum(s.records for s in spans[:3])))  # every span before it, none of it
    kept = {p.name for p in (tmp / "cache" / "objects").rglob("*")}
    assert not {bad.md5, objects[0].md5} & kept and not any(n.endswith(".part") for n in kept)  # nor cached
