"""Laws of sharding and resume: every record of an epoch exactly once, across ranks, workers and re-sharded resumes."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.loader import index
from reconciler.loader.dataset import StreamingDataset
from reconciler.loader.formats import RecordFormat
from reconciler.loader.resolve import SourceObject
from reconciler.stores.memory import MemoryStore


def make_store(
    sizes: list[int], *, bad: frozenset[tuple[int, int]] = frozenset()
) -> tuple[MemoryStore, list[SourceObject]]:
    store = MemoryStore("mem")
    objects = []
    for i, n in enumerate(sizes):
        lines = []
        for j in range(n):
            lines.append("{not json" if (i, j) in bad else json.dumps({"id": f"{i}-{j}"}))
            if j % 7 == 3:
                lines.append("")  # blank lines are no records
        key = f"shards/{i:03d}.jsonl"
        store.put(key, ("\n".join(lines) + ("\n" if lines else "")).encode())
        entry = store.stat(key)
        assert entry is not None
        objects.append(SourceObject("mem", key, entry.md5, entry.size, RecordFormat.JSONL))
    return store, objects


def everything(sizes: list[int]) -> Counter[str]:
    return Counter(f"{i}-{j}" for i, n in enumerate(sizes) for j in range(n))


def _returns(value: Any) -> Callable[[], Any]:
    return lambda: value


def consumers(
    store: MemoryStore, objects: list[SourceObject], world: int, workers: int, **kw: Any
) -> list[StreamingDataset]:
    """One dataset copy per (rank, worker), as each rank's DataLoader workers hold them; workers=0: main process."""
    out = []
    for rank in range(world):
        for worker in range(max(workers, 1)):
            info = None if workers == 0 else SimpleNamespace(id=worker, num_workers=workers)
            out.append(
                StreamingDataset(
                    objects, {"mem": store}, rank=rank, world_size=world, worker_info=_returns(info), **kw
                )
            )
    return out


def take(ds: StreamingDataset, limit: int | None) -> list[str]:
    got: list[str] = []
    if limit == 0:
        return got
    for record in ds:
        got.append(record["id"])
        if limit is not None and len(got) >= limit:
            break
    return got


shapes = st.tuples(st.integers(1, 8), st.integers(0, 4))
partitions = st.sampled_from(["drop", "pad"])


@contextlib.contextmanager
def spans_of(span_bytes: int | None) -> Iterator[None]:
    """Objects over `span_bytes` are cut into spans of about that size (None: the real 4 MiB, so none here)."""
    if span_bytes is None:
        yield
        return
    with mock.patch.object(index, "SPAN_BYTES", span_bytes), mock.patch.object(index, "SPAN_RECORDS", 5):
        yield


def per_rank_counts(parts: list[list[str]], world: int) -> list[int]:
    per = len(parts) // world
    return [sum(len(p) for p in parts[r * per : (r + 1) * per]) for r in range(world)]


def check_epoch(got: Counter[str], sizes: list[int], partition: str, extra_allowed: int, missing_allowed: int) -> None:
    """drop: each record at most once, at most `missing_allowed` left out; pad: each at least once, the
    repeats at most `extra_allowed`."""
    want = everything(sizes)
    if partition == "drop":
        assert not got - want  # nothing twice, nothing invented
        assert sum((want - got).values()) <= missing_allowed
    else:
        assert not want - got or not want  # every record
        assert set(got) <= set(want)
        assert sum((got - want).values()) <= extra_allowed


@settings(max_examples=120, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 25), min_size=1, max_size=8),
    shape=shapes,
    partition=partitions,
    shuffle=st.booleans(),
    seed=st.integers(0, 3),
    block=st.integers(1, 9),
    span_bytes=st.sampled_from([None, 60, 250]),
)
def test_every_rank_yields_the_same_number_of_records_known_before_the_first(
    sizes: list[int], shape: tuple[int, int], partition: str, shuffle: bool, seed: int, block: int,
    span_bytes: int | None,
) -> None:
    world, workers = shape
    store, objects = make_store(sizes)
    with spans_of(span_bytes):
        kw: dict[str, Any] = {"partition": partition, "shuffle": shuffle, "seed": seed, "shuffle_block": block}
        runs = [[take(ds, None) for ds in consumers(store, objects, world, workers, **kw)] for _ in range(2)]
        expected = len(consumers(store, objects, world, 0, **kw)[0])  # len() of a rank, before any record
    parts = runs[0]
    assert runs[0] == runs[1]  # deterministic for (seed, epoch)
    assert per_rank_counts(parts, world) == [expected] * world
    per_worker = [len(p) for p in parts]
    for r in range(world):
        mine = per_worker[r * max(workers, 1) : (r + 1) * max(workers, 1)]
        assert max(mine) - min(mine) <= 1  # a rank's DataLoader workers within one record of each other
    total = sum(sizes)
    assert expected == (total // world if partition == "drop" else -(-total // world))
    check_epoch(Counter(r for p in parts for r in p), sizes, partition, world - 1, world - 1)


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 25), min_size=1, max_size=8),
    first=shapes,
    second=shapes,
    stops=st.lists(st.integers(0, 40), min_size=32, max_size=32),
    partition=partitions,
    shuffle=st.booleans(),
    seed=st.integers(0, 3),
    block=st.integers(1, 9),
    span_bytes=st.sampled_from([None, 60]),
)
def test_an_interrupted_and_resharded_epoch_is_one_epoch(
    sizes: list[int], first: tuple[int, int], second: tuple[int, int], stops: list[int], partition: str,
    shuffle: bool, seed: int, block: int, span_bytes: int | None,
) -> None:
    store, objects = make_store(sizes)
    kw: dict[str, Any] = {"partition": partition, "shuffle": shuffle, "seed": seed, "shuffle_block": block}
    with spans_of(span_bytes):
        before: list[str] = []
        states = []
        for ds, stop in zip(consumers(store, objects, *first, **kw), stops, strict=False):
            ds.set_epoch(2)
            before += take(ds, stop)
            states.append(ds.state_dict())
        merged = StreamingDataset.merge_states(states)
        parts = []
        for ds in consumers(store, objects, *second, **kw):
            ds.load_state_dict(json.loads(json.dumps(merged)))  # a state survives a round trip through JSON
            ds.set_epoch(2)  # the training loop's own call for the epoch it resumes: keeps the progress
            parts.append(take(ds, None))
    if (first[0], max(first[1], 1)) != (second[0], max(second[1], 1)):  # workers=0: one consumer per rank
        # Re-dealt after a change of shape: the resumed run's ranks are equal too. (With the same shape each
        # consumer continues its own stretch: ranks that stopped at the same step stay equal.)
        assert len(set(per_rank_counts(parts, second[0]))) == 1
    after = [r for p in parts for r in p]
    first_world, second_world = first[0], second[0]
    # drop: what the first run left out as remainder is dealt again; only the last run's remainder is lost.
    check_epoch(Counter(before) + Counter(after), sizes, partition,
                (first_world - 1) + (second_world - 1), second_world - 1)


@settings(max_examples=80, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 25), min_size=1, max_size=6),
    shape=shapes,
    stops=st.lists(st.integers(0, 30), min_size=32, max_size=32),
    partition=partitions,
    shuffle=st.booleans(),
    block=st.integers(1, 9),
    span_bytes=st.sampled_from([None, 60]),
)
def test_a_same_shape_resume_continues_each_consumer_exactly_where_it_stopped(
    sizes: list[int], shape: tuple[int, int], stops: list[int], partition: str, shuffle: bool, block: int,
    span_bytes: int | None,
) -> None:
    """The StatefulDataLoader pattern: each worker gets back the state it saved and goes on as if never stopped."""
    store, objects = make_store(sizes)
    kw: dict[str, Any] = {"partition": partition, "shuffle": shuffle, "shuffle_block": block}
    with spans_of(span_bytes):
        whole = [take(ds, None) for ds in consumers(store, objects, *shape, **kw)]
        for ds, resumed, stop, full in zip(
            consumers(store, objects, *shape, **kw), consumers(store, objects, *shape, **kw), stops, whole,
            strict=False,
        ):
            head = take(ds, stop)
            resumed.load_state_dict(json.loads(json.dumps(ds.state_dict())))
            assert head + take(resumed, None) == full


def test_another_epoch_reorders_shards_when_shuffling_and_resets_progress() -> None:
    store, objects = make_store([3] * 12)
    ds = StreamingDataset(objects, {"mem": store}, shuffle=True, seed=1, worker_info=lambda: None)
    first = take(ds, None)
    ds.set_epoch(1)
    second = take(ds, None)
    assert sorted(first) == sorted(second) and first != second
    plain = StreamingDataset(objects, {"mem": store}, worker_info=lambda: None)
    assert take(plain, None) == [f"{i}-{j}" for i in range(12) for j in range(3)]


def test_state_dict_counts_exactly_the_records_yielded_so_far() -> None:
    store, objects = make_store([5, 5])
    ds = StreamingDataset(objects, {"mem": store}, worker_info=lambda: None)
    it = iter(ds)
    got = [next(it)["id"] for _ in range(7)]
    fresh = StreamingDataset(objects, {"mem": store}, worker_info=lambda: None)
    fresh.load_state_dict(ds.state_dict())
    assert got + take(fresh, None) == [f"{i}-{j}" for i in range(2) for j in range(5)]


def test_resharding_from_one_workers_state_alone_is_refused() -> None:
    store, objects = make_store([10])
    workers = consumers(store, objects, 1, 2)
    take(workers[0], 3)
    take(workers[1], 2)
    lone = workers[0].state_dict()
    ds = consumers(store, objects, 1, 3)[0]
    ds.load_state_dict(lone)
    with pytest.raises(ValueError, match="merge the states"):
        take(ds, None)


def test_a_state_of_other_objects_is_refused() -> None:
    store, objects = make_store([4, 4])
    ds = StreamingDataset(objects, {"mem": store}, worker_info=lambda: None)
    take(ds, 2)
    other = StreamingDataset(objects[:1], {"mem": store}, worker_info=lambda: None)
    with pytest.raises(ValueError, match="other objects"):
        other.load_state_dict(ds.state_dict())


def test_bad_records_raise_with_key_and_line_or_are_skipped_and_keep_their_slot() -> None:
    store, objects = make_store([6], bad=frozenset({(0, 2)}))
    with pytest.raises(Exception, match=r"shards/000.jsonl: line 3"):
        take(StreamingDataset(objects, {"mem": store}, worker_info=lambda: None), None)
    parts = [take(ds, None) for ds in consumers(store, objects, 2, 0, on_error="skip")]
    assert sorted(parts[0] + parts[1]) == ["0-0", "0-1", "0-3", "0-4", "0-5"]
    assert parts[0] == ["0-0", "0-1"]  # slot 2 (the bad line) was rank 0's: skipped, not handed to rank 1


def test_rank_and_world_size_default_to_torch_distributed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    store, objects = make_store([8])
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    ds = StreamingDataset(objects, {"mem": store}, worker_info=lambda: None)
    assert (ds.rank, ds.world_size) == (1, 4)
    assert take(ds, None) == ["0-2", "0-3"]  # rank 1's contiguous quarter


def test_a_dataset_pickles_into_a_worker_without_its_open_stores(tmp_path: Any) -> None:
    """DataLoader pickles the dataset into each worker: stores are rebuilt from their specs there."""
    import pickle

    from reconciler.loader.cache import ObjectCache
    from reconciler.loader.storeset import StoreSet
    from reconciler.model import LocalStoreSpec

    (tmp_path / "data").mkdir()
    body = b"".join(json.dumps({"id": f"0-{j}"}).encode() + b"\n" for j in range(5))
    (tmp_path / "data" / "a.jsonl").write_bytes(body)
    stores = StoreSet({"disk": LocalStoreSpec("disk", str(tmp_path / "data"))})
    entry = stores["disk"].stat("a.jsonl")
    assert entry is not None
    objects = [SourceObject("disk", "a.jsonl", None, entry.size, RecordFormat.JSONL)]
    ds = StreamingDataset(objects, stores, cache=ObjectCache(tmp_path / "cache"))  # default: torch worker info
    first = take(ds, None)
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.stores is not stores and not copy.stores._open  # rebuilt on first use in the worker
    assert take(copy, None) == first == [f"0-{j}" for j in range(5)]


@pytest.mark.parametrize("resharded", [False, True])
def test_a_state_claiming_more_records_than_a_share_holds_is_refused(resharded: bool) -> None:
    store, objects = make_store([5, 5])
    ds = consumers(store, objects, 2, 0)[0]
    take(ds, 2)
    state = StreamingDataset.merge_states([ds.state_dict(), consumers(store, objects, 2, 0)[1].state_dict()])
    state["generations"][-1]["counts"]["0"] = 6  # rank 0's share of 10 records over 2 ranks is 5
    again = consumers(store, objects, 3 if resharded else 2, 0)[0]
    again.load_state_dict(state)
    with pytest.raises(ValueError, match="claims 6 records yielded, its share of the epoch is 5"):
        take(again, None)


@pytest.mark.parametrize("old", [1, 2])
def test_a_state_saved_by_an_older_pixel_is_refused_saying_why_and_what_to_do(old: int) -> None:
    store, objects = make_store([4, 4])
    ds = StreamingDataset(objects, {"mem": store}, worker_info=lambda: None)
    take(ds, 2)
    saved = {**ds.state_dict(), "version": old}
    fresh = StreamingDataset(objects, {"mem": store}, worker_info=lambda: None)
    with pytest.raises(ValueError) as refused:
        fresh.load_state_dict(saved)
    message = str(refused.value)
    assert f"saved by an older pixel (state version {old}" in message
    assert "start the epoch afresh" in message and "the pixel that saved it" in message
    assert take(fresh, None) == take(StreamingDataset(objects, {"mem": store}, worker_info=lambda: None), None)
