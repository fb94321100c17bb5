"""The cold lone read of a big indexed object (issue 25, cold25): each verified span's slots handed to the decoding
loop as one list, flattened in C, where each record passed five generators. What it must never change: the records,
their line numbers (errors name the object's line, not the span's), and the release of everything on an early stop."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.loader import index
from reconciler.loader.cache import ObjectCache
from reconciler.loader.dataset import StreamingDataset
from reconciler.loader.formats import DatasetFormatError, RecordFormat, whole_lines
from reconciler.loader.index import IndexStore, build
from reconciler.loader.resolve import SourceObject
from reconciler.stores.memory import MemoryStore
from tests.unit.loader.test_warm import LINES, as_pairs, calls_per_item

SPAN = 32768  # small spans, so a few thousand records make an object of many


@pytest.fixture(autouse=True)
def small_spans() -> Iterator[None]:
    with mock.patch.object(index, "SPAN_BYTES", SPAN), mock.patch.object(index, "FIRST_SPAN_BYTES", SPAN // 4):
        yield


def indexed(tmp_path: Path, lines: list[bytes]) -> tuple[MemoryStore, SourceObject, Path]:
    """One JSON Lines object in many spans, its record index kept in the returned index_dir (as apply's would be)."""
    store = MemoryStore("mem")
    body = b"".join(line + b"\n" for line in lines)
    store.put("big.jsonl", body)
    obj = SourceObject("mem", "big.jsonl", hashlib.md5(body).hexdigest(), len(body), RecordFormat.JSONL)
    built = build(io.BytesIO(body), key=obj.key, fmt=obj.fmt, split=True)
    assert len(built.spans) > 10
    IndexStore(tmp_path / "idx").put(built, obj.fmt)
    return store, obj, tmp_path / "idx"


def records(n: int) -> list[bytes]:
    return [json.dumps({"id": i, "text": "a few words of chat"}).encode() for i in range(n)]


def lone(store: MemoryStore, obj: SourceObject, index_dir: Path, cache: ObjectCache | None,
         **kw: object) -> StreamingDataset:
    return StreamingDataset([obj], {"mem": store}, worker_info=lambda: None, cache=cache, index_dir=index_dir,
                            **kw)  # type: ignore[arg-type]


@given(lines=LINES, end=st.sampled_from(["", "\n", " "]), first=st.integers(1, 10**9))
def test_whole_lines_counted_from_a_spans_first_line_are_its_lines_renumbered(
    lines: list[str], end: str, first: int
) -> None:
    data = ("\n".join(lines) + end).encode()
    shifted = [(n + first - 1, kind, line) for n, kind, line in as_pairs(whole_lines(data, "head"))]
    assert as_pairs(whole_lines(data, "head", first)) == shifted


@pytest.mark.parametrize("cached", [False, True])
def test_a_cold_lone_read_of_a_big_object_costs_a_bounded_number_of_calls_a_record(
    tmp_path: Path, cached: bool
) -> None:
    """Counted on the decoding thread, not timed: function calls (Python and built-in, generator steps included)
    over records, while the object streams in verified spans (with a cache: written into it as it comes). Each
    record passing the line splitter's, the span's, the stream's, the indexed object's and the read's generators
    cost 7.1 calls a record (with or without the cache), now about 2.1."""
    store, obj, index_dir = indexed(tmp_path, records(20000))
    cache = ObjectCache(tmp_path / "cache") if cached else None
    ds = lone(store, obj, index_dir, cache)
    n, calls = calls_per_item(iter(ds))
    assert n == 20000
    assert calls < 3.0, f"{calls:.2f} calls a record"
    if cache is not None:
        cache.settle()
        assert cache.use(obj.md5 or "", obj.size) is not None  # the stream filled the cache


def test_an_error_in_a_later_span_names_the_objects_line_and_skipping_keeps_every_other_record(
    tmp_path: Path,
) -> None:
    lines = records(20000)
    lines[15555] = b"{not json"
    store, obj, index_dir = indexed(tmp_path, lines)
    with pytest.raises(DatasetFormatError, match=r"big.jsonl: line 15556\b"):
        list(lone(store, obj, index_dir, None))
    ds = lone(store, obj, index_dir, None, on_error="skip")
    assert [r["id"] for r in ds] == [i for i in range(20000) if i != 15555] and ds.skipped == 1


def test_a_cold_lone_read_stopped_early_joins_its_threads_and_leaves_the_object_to_the_next_read(
    tmp_path: Path,
) -> None:
    store, obj, index_dir = indexed(tmp_path, records(20000))
    cache = ObjectCache(tmp_path / "cache")
    before = threading.active_count()
    it = cast(Generator[dict[str, Any]], iter(lone(store, obj, index_dir, cache)))
    assert [next(it)["id"] for _ in range(5)] == list(range(5))
    it.close()  # as a `break` or take() does
    assert threading.active_count() == before  # the download and hashing threads are joined, not left running
    cache.settle()
    assert [r["id"] for r in lone(store, obj, index_dir, cache)] == list(range(20000))  # the lock came free
