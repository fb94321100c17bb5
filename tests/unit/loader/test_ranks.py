"""Equal ranks, record-level shuffle and spans: the cases issue 25 reported, and real worker processes."""

from __future__ import annotations

import collections.abc
import hashlib
import json
import multiprocessing
import pickle
import sys
import types
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

from reconciler.loader import index
from reconciler.loader.cache import ObjectCache
from reconciler.loader.dataset import StreamingDataset
from reconciler.loader.formats import RecordFormat
from reconciler.loader.index import IndexStore, build
from reconciler.loader.resolve import SourceObject
from reconciler.stores.base import PermanentStoreError
from reconciler.stores.memory import MemoryStore
from tests.unit.loader.test_sharding import _returns, consumers, everything, make_store, per_rank_counts, take


@pytest.mark.parametrize(("world", "workers", "per_rank"), [(3, 3, 13), (2, 3, 19), (4, 4, 9)])
def test_the_shapes_the_issue_reported_give_every_rank_the_same_count(world: int, workers: int, per_rank: int) -> None:
    """39 records in 7 objects gave [15, 12, 12] for 3 x 3, [21, 18] for 2 x 3, [12, 11, 8, 8] for 4 x 4."""
    sizes = [6, 6, 6, 6, 5, 5, 5]
    store, objects = make_store(sizes)
    parts = [take(ds, None) for ds in consumers(store, objects, world, workers)]
    assert per_rank_counts(parts, world) == [per_rank] * world
    assert len(consumers(store, objects, world, 0)[0]) == per_rank
    dropped = everything(sizes) - Counter(r for p in parts for r in p)
    assert sum(dropped.values()) == 39 - per_rank * world


def test_pad_repeats_records_from_the_front_deterministically() -> None:
    store, objects = make_store([4, 3])  # 7 records, 3 ranks: 2 repeats
    parts = [take(ds, None) for ds in consumers(store, objects, 3, 0, partition="pad")]
    assert parts == [["0-0", "0-1", "0-2"], ["0-3", "1-0", "1-1"], ["1-2", "0-0", "0-1"]]
    assert consumers(store, objects, 3, 0, partition="pad")[2].padded == 0  # known only once it has run
    ds = consumers(store, objects, 3, 0, partition="pad")[2]
    take(ds, None)
    assert ds.padded == 2


def test_the_dropped_remainder_is_counted() -> None:
    store, objects = make_store([4, 3])
    ds = consumers(store, objects, 3, 0)[0]
    assert take(ds, None) == ["0-0", "0-1"]
    assert ds.dropped == 1  # 7 records over 3 ranks: 1-2 is left out this epoch


def test_a_bad_partition_or_block_is_refused() -> None:
    store, objects = make_store([1])
    with pytest.raises(ValueError, match="partition"):
        StreamingDataset(objects, {"mem": store}, partition="even")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shuffle_block"):
        StreamingDataset(objects, {"mem": store}, shuffle_block=0)


def test_a_one_object_dataset_shuffles_and_the_order_follows_seed_and_epoch() -> None:
    store, objects = make_store([50])
    orders = {}
    for seed, epoch in [(1, 0), (2, 0), (1, 1)]:
        ds = StreamingDataset(objects, {"mem": store}, shuffle=True, seed=seed, worker_info=lambda: None)
        ds.set_epoch(epoch)
        orders[seed, epoch] = take(ds, None)
        assert sorted(orders[seed, epoch]) == sorted(everything([50]))
    again = StreamingDataset(objects, {"mem": store}, shuffle=True, seed=1, worker_info=lambda: None)
    assert take(again, None) == orders[1, 0]
    assert len({tuple(o) for o in orders.values()}) == 3
    assert orders[1, 0] != [f"0-{j}" for j in range(50)]


@pytest.mark.slow
def test_shuffle_quality_of_the_default_block_on_one_big_object(capsys: pytest.CaptureFixture[str]) -> None:
    """Mean absolute displacement (as a fraction of the dataset) and Spearman's rank correlation of positions.

    One object of 200,000 records in 143 spans, about the proportions of the bench's 512 MiB object in 4 MiB
    spans:
    spans in a shuffled order, then records shuffled in blocks of the default 16,384. A uniform shuffle has
    displacement 1/3 and correlation 0; file order has 0 and 1."""
    n = 200_000
    store = MemoryStore("mem")
    store.put("big.jsonl", b"".join(b'{"i":%d}\n' % i for i in range(n)))
    entry = store.stat("big.jsonl")
    assert entry is not None
    obj = SourceObject("mem", "big.jsonl", entry.md5, entry.size, RecordFormat.JSONL)
    mean = (n - 1) / 2
    spread = sum((i - mean) ** 2 for i in range(n))
    figures = []
    with mock.patch.object(index, "SPAN_BYTES", 17_500):
        for seed in range(3):
            ds = StreamingDataset([obj], {"mem": store}, shuffle=True, seed=seed, worker_info=lambda: None)
            got = [r["i"] for r in ds]
            assert sorted(got) == list(range(n))
            displacement = sum(abs(pos - i) for pos, i in enumerate(got)) / n / n
            spearman = sum((pos - mean) * (i - mean) for pos, i in enumerate(got)) / spread
            figures.append((displacement, spearman))
    with capsys.disabled():
        shown = ", ".join(f"seed {s}: displacement {d:.3f} spearman {r:+.3f}" for s, (d, r) in enumerate(figures))
        print(f"\nshuffle quality (block 16384, 200k records in 143 spans): {shown}")
    assert all(d > 0.25 for d, _ in figures)
    assert sum(abs(r) for _, r in figures) / len(figures) < 0.15


def test_a_span_whose_bytes_do_not_match_the_index_is_never_yielded(tmp_path: Path) -> None:
    store = MemoryStore("mem")
    body = b"".join(json.dumps({"id": f"0-{j}"}).encode() + b"\n" for j in range(40))
    store.put("big.jsonl", body)
    entry = store.stat("big.jsonl")
    assert entry is not None
    obj = SourceObject("mem", "big.jsonl", entry.md5, entry.size, RecordFormat.JSONL)
    with mock.patch.object(index, "SPAN_BYTES", 100):
        built = build(store.open("big.jsonl"), key=obj.key, fmt=obj.fmt, split=True)  # type: ignore[arg-type]
        assert len(built.spans) > 3
        # The index kept for this md5 says one span holds other bytes than it does (a corrupted index, a
        # store that answers a range with the wrong bytes: the same to the reader).
        bad = built.spans[1]
        forged = index.RecordIndex(
            built.md5, built.size, built.records,
            (built.spans[0], index.Span(bad.start, bad.stop, bad.lines, bad.records, hashlib.md5(b"x").hexdigest(),
                                        hashlib.sha256(b"x").hexdigest()),
             *built.spans[2:]),
        )
        IndexStore(tmp_path / "idx").put(forged, obj.fmt)
        for cache in (None, ObjectCache(tmp_path / "cache")):
            ds = StreamingDataset([obj], {"mem": store}, worker_info=lambda: None, cache=cache, rank=0, world_size=2,
                                  index_dir=tmp_path / "idx")  # rank 0 of 2: its half, spans 0 to 3 or so
            got: list[str] = []
            with pytest.raises(PermanentStoreError, match=r"big.jsonl bytes \d+-\d+.*SHA-256"):
                for record in ds:
                    got.append(record["id"])
            assert got == [f"0-{j}" for j in range(built.spans[0].records)]  # nothing of the bad span


def test_an_index_is_built_once_per_md5_and_gives_the_same_records(tmp_path: Path) -> None:
    store, objects = make_store([30, 0, 12])
    with mock.patch.object(index, "SPAN_BYTES", 120):
        first = StreamingDataset(objects, {"mem": store}, worker_info=lambda: None, index_dir=tmp_path)
        assert len(first) == 42
        assert any(u.span is not None for u in first.units())  # the 30-record object is in spans
        kept = sorted(p.name for p in tmp_path.rglob("*.json"))
        assert len(kept) == 3
        reads: list[str] = []
        real_open = store.open

        def counting(key: str, **kw: Any) -> Any:
            reads.append(key)
            return real_open(key, **kw)

        with mock.patch.object(store, "open", counting):
            again = StreamingDataset(objects, {"mem": store}, worker_info=lambda: None, index_dir=tmp_path)
            assert len(again) == 42 and not reads  # counted from the kept indexes: no object read
            assert take(again, None) == take(first, None) == [f"{i}-{j}" for i, n in enumerate([30, 0, 12])
                                                                for j in range(n)]


def _fake_torch(worker: int, workers: int) -> None:
    """What a DataLoader worker process sees: torch imported, get_worker_info() naming this worker."""
    data = types.ModuleType("torch.utils.data")
    data.IterableDataset = type("IterableDataset", (), {})  # type: ignore[attr-defined]
    data.get_worker_info = lambda: SimpleNamespace(id=worker, num_workers=workers)  # type: ignore[attr-defined]
    utils = types.ModuleType("torch.utils")
    utils.data = data  # type: ignore[attr-defined]
    torch = types.ModuleType("torch")
    torch.utils = utils  # type: ignore[attr-defined]
    sys.modules.update({"torch": torch, "torch.utils": utils, "torch.utils.data": data})


def _worker_main(payload: bytes, worker: int, workers: int, out: Any) -> None:
    _fake_torch(worker, workers)
    ds = pickle.loads(payload) if isinstance(payload, bytes) else payload
    out.put((ds.rank, worker, [r["id"] for r in ds], ds.state_dict()))


def on_disk(tmp_path: Path, sizes: list[int]) -> tuple[Any, list[SourceObject]]:
    """Objects in a local store built from its spec: a dataset over it pickles into a spawned process."""
    from reconciler.loader.storeset import StoreSet
    from reconciler.model import LocalStoreSpec

    (tmp_path / "data").mkdir()
    for i, n in enumerate(sizes):
        (tmp_path / "data" / f"{i}.jsonl").write_bytes(b"".join(b'{"id": "%d-%d"}\n' % (i, j) for j in range(n)))
    stores = StoreSet({"disk": LocalStoreSpec("disk", str(tmp_path / "data"))})
    objects = []
    for i in range(len(sizes)):
        entry = stores["disk"].stat(f"{i}.jsonl")
        assert entry is not None
        objects.append(SourceObject("disk", f"{i}.jsonl", None, entry.size, RecordFormat.JSONL))
    return stores, objects


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_dataloader_worker_processes_split_a_rank_evenly(tmp_path: Path, method: str) -> None:
    """Each worker a process of its own (fork: inherits the dataset; spawn: unpickles it), torch's
    get_worker_info() as its only clue, as DataLoader runs them."""
    sizes = [7, 0, 5, 9]
    stores, objects = on_disk(tmp_path, sizes)
    context: Any = multiprocessing.get_context(method)
    out = context.Queue()
    world, workers = 2, 2
    processes = []
    for rank in range(world):
        ds = StreamingDataset(objects, stores, rank=rank, world_size=world, shuffle=True, seed=3,
                              cache=ObjectCache(tmp_path / "cache"))
        assert len(ds) == 10  # in the main process, before any worker starts: 21 records, 2 ranks, 1 dropped
        for worker in range(workers):
            payload: Any = pickle.dumps(ds) if method == "spawn" else ds
            processes.append(context.Process(target=_worker_main, args=(payload, worker, workers, out)))
    for p in processes:
        p.start()
    results = [out.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    per_rank = Counter[int]()
    per_worker = []
    got: Counter[str] = Counter()
    for rank, _worker, ids, state in results:
        per_rank[rank] += len(ids)
        per_worker.append(len(ids))
        got.update(ids)
        assert state["generations"][-1]["workers"] == workers  # the worker's own shape, not the main process's
    assert per_rank == {0: 10, 1: 10}
    assert sorted(per_worker) == [5, 5, 5, 5]
    assert not got - everything(sizes) and sum((everything(sizes) - got).values()) == 1


def test_after_counting_a_big_object_through_the_cache_its_spans_are_read_from_that_copy(tmp_path: Path) -> None:
    store = MemoryStore("mem")
    store.put("big.jsonl", b"".join(json.dumps({"id": f"0-{j}"}).encode() + b"\n" for j in range(60)))
    entry = store.stat("big.jsonl")
    assert entry is not None
    obj = SourceObject("mem", "big.jsonl", entry.md5, entry.size, RecordFormat.JSONL)
    opened: list[str] = []
    real_open = store.open

    def counting(key: str, **kw: Any) -> Any:
        opened.append(key)
        return real_open(key, **kw)

    with mock.patch.object(index, "SPAN_BYTES", 100), mock.patch.object(store, "open", counting):
        parts = []
        for rank in range(2):
            ds = StreamingDataset([obj], {"mem": store}, rank=rank, world_size=2, shuffle=True,
                                  cache=ObjectCache(tmp_path), worker_info=lambda: None)
            parts.append(take(ds, None))
        assert opened == ["big.jsonl"]  # one read, to count; every span then came from the verified copy
        assert sorted(parts[0] + parts[1]) == sorted(everything([60]))
        opened.clear()
        lone = StreamingDataset([obj], {"mem": store}, worker_info=lambda: None)  # no cache, no index kept
        assert take(lone, None) == [f"0-{j}" for j in range(60)] and opened == ["big.jsonl"]  # streamed, not counted
        assert lone._units is None


def test_a_process_waits_for_another_counting_the_same_object_and_reads_its_index(tmp_path: Path) -> None:
    """DataLoader workers all ask for the counts at once: one reads the object, the others its index."""
    import threading

    store, objects = make_store([9])
    obj = objects[0]
    assert obj.md5 is not None
    indexes = IndexStore(tmp_path)
    opened: list[str] = []
    real_open = store.open

    def counting(key: str, **kw: Any) -> Any:
        opened.append(key)
        return real_open(key, **kw)

    got: list[int] = []
    waiter = StreamingDataset(objects, {"mem": store}, worker_info=lambda: None, index_dir=tmp_path)
    assert waiter.indexes is not None
    looked = threading.Event()
    real_get = waiter.indexes.get

    def get(md5: str, fmt: RecordFormat) -> Any:
        found = real_get(md5, fmt)
        looked.set()
        return found

    with mock.patch.object(store, "open", counting), mock.patch.object(waiter.indexes, "get", get):
        with indexes.building(obj.md5, obj.fmt):  # another process is counting it
            thread = threading.Thread(target=lambda: got.append(waiter.record_index(obj).records))
            thread.start()
            assert looked.wait(60)  # the waiter found no index yet
            indexes.put(build(real_open(obj.key), key=obj.key, fmt=obj.fmt, split=False), obj.fmt)  # type: ignore[arg-type]
        thread.join()
    assert got == [9] and opened == []


def _persistent_worker(ds: StreamingDataset, worker: int, workers: int, commands: Any, out: Any) -> None:
    """A persistent DataLoader worker: started once with its copy of the dataset, it iterates it each epoch."""
    _fake_torch(worker, workers)
    while commands.get() == "epoch":
        out.put([r["id"] for r in ds])


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_persistent_workers_follow_set_epoch_in_the_main_process(tmp_path: Path, method: str) -> None:
    stores, objects = on_disk(tmp_path, [6, 5, 7, 4])
    context: Any = multiprocessing.get_context(method)
    ds = StreamingDataset(objects, stores, shuffle=True, seed=5, shuffle_block=3)
    workers = 2
    commands = [context.Queue() for _ in range(workers)]
    outs = [context.Queue() for _ in range(workers)]
    # As DataLoader starts its workers: the dataset is an argument of the process (pickled only under spawn).
    processes = [
        context.Process(target=_persistent_worker, args=(ds, w, workers, commands[w], outs[w])) for w in range(workers)
    ]
    for p in processes:
        p.start()
    try:
        for epoch in (0, 1, 2):
            ds.set_epoch(epoch)
            for queue in commands:
                queue.put("epoch")
            got = [out.get(timeout=120) for out in outs]
            expected = []
            for info in (SimpleNamespace(id=w, num_workers=workers) for w in range(workers)):
                fresh = StreamingDataset(objects, stores, shuffle=True, seed=5, shuffle_block=3,
                                         worker_info=_returns(info))
                fresh.set_epoch(epoch)
                expected.append(take(fresh, None))
            assert got == expected, epoch
    finally:
        for queue in commands:
            queue.put("stop")
        for p in processes:
            p.join(timeout=60)
    assert [p.exitcode for p in processes] == [0, 0]


def test_a_dataset_made_before_torch_was_imported_is_a_torch_iterable_dataset_once_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DataLoader tells an iterable dataset by isinstance: `import torch` after load_dataset must not make it
    take the dataset for a map-style one (it has __len__) and index it."""
    stores, objects = on_disk(tmp_path, [3, 2])
    assert "torch" not in sys.modules
    ds = StreamingDataset(objects, stores)  # torch's get_worker_info, once torch is there
    data = types.ModuleType("torch.utils.data")
    # As torch's: `class IterableDataset(Dataset[T_co], Iterable[T_co])`, typing's Iterable making it an ABC,
    # whose isinstance reads __class__ (a plain class's isinstance would see the swap only from the next call).
    iterable = type("IterableDataset", (collections.abc.Iterable,), {"__iter__": lambda self: iter(())})
    data.IterableDataset = iterable  # type: ignore[attr-defined]
    data.get_worker_info = lambda: None  # type: ignore[attr-defined]  # the main process
    utils = types.ModuleType("torch.utils")
    utils.data = data  # type: ignore[attr-defined]
    torch = types.ModuleType("torch")
    torch.utils = utils  # type: ignore[attr-defined]
    for name, module in (("torch", torch), ("torch.utils", utils), ("torch.utils.data", data)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "reconciler.loader.torch_compat", raising=False)
    assert isinstance(ds, iterable) and isinstance(ds, StreamingDataset)
    assert type(ds).__name__ == "TorchStreamingDataset"  # in place: pickled copies for workers are too
    copy = pickle.loads(pickle.dumps(ds))
    assert type(copy) is type(ds) and take(copy, None) == take(ds, None) == ["0-0", "0-1", "0-2", "1-0", "1-1"]


def test_counts_a_manifest_gives_are_used_without_reading_the_objects(tmp_path: Path) -> None:
    """The final dataset's shards carry their record counts: len() and the dealing need no read."""
    import dataclasses

    store, listed = make_store([4, 6, 5])
    objects = [dataclasses.replace(o, records=n) for o, n in zip(listed, [4, 6, 5], strict=True)]
    opened: list[str] = []
    real_open = store.open

    def counting(key: str, **kw: Any) -> Any:
        opened.append(key)
        return real_open(key, **kw)

    with mock.patch.object(store, "open", counting):
        ranks = [StreamingDataset(objects, {"mem": store}, rank=r, world_size=3, index_dir=tmp_path,
                                  worker_info=lambda: None) for r in range(3)]
        assert [len(ds) for ds in ranks] == [5, 5, 5] and not opened
        assert take(ranks[0], None) == ["0-0", "0-1", "0-2", "0-3", "1-0"]
        assert opened == [objects[0].key, objects[1].key]  # rank 0 read only the objects of its stretch
    assert not list(tmp_path.rglob("*.json"))  # and nothing was indexed


class _Unreachable:
    """A store whose every call fails: offline=True must never make one; S3 down makes each one fail."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            raise self.error(f"{name}: S3 does not answer")

        return call


def test_without_s3_a_span_is_served_from_its_verified_cached_copy_and_a_cold_one_fails_naming_it(
    tmp_path: Path,
) -> None:
    from reconciler.loader.offline import NotCachedOffline
    from reconciler.stores.base import TransientStoreError

    store = MemoryStore("mem")
    store.put("big.jsonl", b"".join(json.dumps({"id": f"0-{j}"}).encode() + b"\n" for j in range(60)))
    entry = store.stat("big.jsonl")
    assert entry is not None
    obj = SourceObject("mem", "big.jsonl", entry.md5, entry.size, RecordFormat.JSONL)
    with mock.patch.object(index, "SPAN_BYTES", 100):
        # The index is on storage every node shares; this node's cache holds only rank 0's spans, not the object.
        built = build(store.open("big.jsonl"), key=obj.key, fmt=obj.fmt, split=True)  # type: ignore[arg-type]
        assert len(built.spans) > 3
        IndexStore(tmp_path / "idx").put(built, obj.fmt)

        def rank(r: int, stores: Any, **options: Any) -> StreamingDataset:
            return StreamingDataset([obj], stores, rank=r, world_size=2, cache=ObjectCache(tmp_path / "cache"),
                                    index_dir=tmp_path / "idx", worker_info=lambda: None, **options)

        online = take(rank(0, {"mem": store}), None)
        assert online and not ObjectCache(tmp_path / "cache").has(str(obj.md5))

        never = _Unreachable(AssertionError)
        assert take(rank(0, {"mem": never}, offline=True), None) == online
        with pytest.raises(NotCachedOffline, match=r"mem:big.jsonl bytes \d+-\d+: offline"):
            take(rank(1, {"mem": never}, offline=True), None)
        assert never.calls == []

        # S3 down: a verified span is pinned by its md5 in the index, so it needs no S3 at all; a cold one is
        # tried, and fails naming the object and its bytes rather than with the store's transient error.
        down = _Unreachable(TransientStoreError)
        assert take(rank(0, {"mem": down}), None) == online and down.calls == []
        with pytest.raises(NotCachedOffline, match=r"mem:big.jsonl bytes \d+-\d+: S3 is unreachable"):
            take(rank(1, {"mem": down}), None)
        assert down.calls
