"""The warm pass over small shards (issue 25, warm25): a cached object read whole and split at once, the verified
stream rewound instead of wrapped, the plain decode in line. What it must never change: the slots, their numbers and
marks, the records, the positions a state saves, and the check of every cached copy."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.loader.cache import ObjectCache
from reconciler.loader.dataset import StreamingDataset
from reconciler.loader.formats import Exact, RecordFormat, marked_lines, whole_lines
from reconciler.loader.resolve import SourceObject
from reconciler.stores.memory import MemoryStore
from tests.unit.loader.test_sharding import make_store

# Lines as JSON Lines objects hold them: records, blanks of every kind, a record led by whitespace, integers past 64
# bits (a long digit run: decoded by the standard library), malformed lines, and a lone "\r".
LINES = st.lists(
    st.one_of(
        st.integers(0, 10**6).map(lambda i: json.dumps({"id": i})),
        st.sampled_from(["", " ", "\t", "\r", "  \t ", " {\"lead\": 1}", "{not json", "[1, 2]"]),
        st.integers(10**18, 10**30).map(lambda i: json.dumps({"big": i})),
        st.text(alphabet="0123456789 ab\"{}:,", max_size=40),
    ),
    max_size=40,
)


def as_pairs(lines: list[tuple[Any, int, Any]]) -> list[tuple[int, str, bytes]]:
    return [(n, type(line).__name__, line.line if isinstance(line, Exact) else line) for _, n, line in lines]


@given(lines=LINES, end=st.sampled_from(["", "\n", "\n\n", " "]), chunk=st.integers(1, 64))
def test_whole_lines_are_the_streamed_lines_with_their_numbers_and_marks(
    lines: list[str], end: str, chunk: int
) -> None:
    data = ("\n".join(lines) + end).encode()
    streamed = [("head", n, line) for n, line in marked_lines(io.BytesIO(data), chunk)]
    assert as_pairs(whole_lines(data, "head")) == as_pairs(streamed)
    assert all(head == "head" for head, _, _ in whole_lines(data, "head"))


STREAMED = staticmethod(lambda obj, stream: None)  # StreamingDataset._whole declining: every object streamed
SHAPES = st.lists(st.integers(0, 30), min_size=1, max_size=6)


def passes(ds: StreamingDataset, stop: int) -> tuple[list[Any], list[dict[str, Any]]]:
    """The first `stop` records (all when 0), and the state after each."""
    records: list[Any] = []
    states: list[dict[str, Any]] = []
    for record in ds:
        records.append(record)
        states.append(ds.state_dict())
        if len(records) == stop:
            break
    return records, states


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=SHAPES, shuffle=st.booleans(), world=st.integers(1, 3), stop=st.integers(0, 60),
       bad=st.sets(st.tuples(st.integers(0, 5), st.integers(0, 30)), max_size=3), data=st.data())
def test_a_warm_pass_yields_the_records_and_states_of_a_streamed_one(
    tmp_path_factory: Any, sizes: list[int], shuffle: bool, world: int, stop: int,
    bad: set[tuple[int, int]], data: st.DataObject,
) -> None:
    """Objects read whole from the cache (warm) against the same objects streamed piece by piece (no whole read):
    every rank's records, the state after each, and the resume from a stop point, with malformed lines skipped."""
    store, objects = make_store(sizes, bad=frozenset(bad))
    rank = data.draw(st.integers(0, world - 1))
    cache = ObjectCache(tmp_path_factory.mktemp("cache"))

    def dataset(cached: bool) -> StreamingDataset:
        return StreamingDataset(objects, {"mem": store}, cache=cache if cached else None, shuffle=shuffle, seed=3,
                                rank=rank, world_size=world, shuffle_block=4, on_error="skip",
                                worker_info=lambda: None, index_dir=cache.root / "indexes")

    list(dataset(True))  # cold: every object cached
    with mock.patch.object(StreamingDataset, "_whole", STREAMED):
        streamed = passes(dataset(False), stop)
    hits = cache.hits
    warm = passes(dataset(True), stop)
    assert warm == streamed
    assert cache.hits > hits or not warm[0]
    if warm[1]:
        resumed, reference = dataset(True), dataset(False)
        resumed.load_state_dict(warm[1][-1])
        reference.load_state_dict(streamed[1][-1])
        with mock.patch.object(StreamingDataset, "_whole", STREAMED):
            rest = list(reference)
        assert list(resumed) == rest


def calls_per_item(items: Iterator[Any]) -> tuple[int, float]:
    """(items left in `items`, function calls made while iterating them, over their number): Python and built-in
    calls, generator steps included. Counted, not timed."""
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    n = 0
    sys.setprofile(count)
    try:
        for _ in items:
            n += 1
    finally:
        sys.setprofile(None)
    return n, calls / max(n, 1)


def test_a_warm_pass_over_shards_costs_a_bounded_number_of_calls_a_record(tmp_path: Path) -> None:
    """Counted, not timed: function calls (Python and built-in, generator steps included) while a warm pass over
    cached shards runs, over its records. Reading each copy in 1 MiB pieces behind a wrapper, then passing each line
    through the line splitter's, the object's and the dataset's generators and a decode call, cost 7.2."""
    store = MemoryStore("mem")
    objects = []
    for i in range(4):
        body = b"".join(json.dumps({"id": f"{i}-{j}", "text": "a few words"}).encode() + b"\n" for j in range(2000))
        store.put(f"shards/{i}.jsonl", body)
        objects.append(SourceObject("mem", f"shards/{i}.jsonl", hashlib.md5(body).hexdigest(), len(body),
                                    RecordFormat.JSONL))
    cache = ObjectCache(tmp_path)
    assert sum(1 for _ in StreamingDataset(objects, {"mem": store}, cache=cache, worker_info=lambda: None)) == 8000
    records, calls = calls_per_item(iter(StreamingDataset(objects, {"mem": store}, cache=cache,
                                                         worker_info=lambda: None)))
    assert records == 8000 and cache.hits == 4
    assert calls < 3.2, f"{calls:.2f} calls a record"


def test_a_cached_copy_changed_on_disk_is_fetched_again_not_served_by_the_whole_read(tmp_path: Path) -> None:
    """The whole read takes its bytes from the checked copy: a copy rewritten in place (same size, other bytes,
    so its recorded identity no longer matches) is hashed, dropped and fetched again, and none of its records
    is yielded."""
    store, objects = make_store([5, 5, 5])
    cache = ObjectCache(tmp_path)
    cold = [r["id"] for r in StreamingDataset(objects, {"mem": store}, cache=cache, worker_info=lambda: None)]
    assert objects[1].md5 is not None
    copy = cache.path(objects[1].md5)
    forged = copy.read_bytes().replace(b'"1-', b'"X-')
    assert len(forged) == copy.stat().st_size and forged != copy.read_bytes()
    fd = os.open(copy, os.O_WRONLY)
    try:
        os.write(fd, forged)
    finally:
        os.close(fd)
    warm = StreamingDataset(objects, {"mem": store}, cache=cache, worker_info=lambda: None)
    assert [r["id"] for r in warm] == cold
    assert cache.dropped == 1 and cache.downloads == 4  # 3 cold, the forged one again
