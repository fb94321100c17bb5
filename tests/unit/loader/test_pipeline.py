"""Laws of the pipeline API: exact resume at any point of any composition, determinism, weights, workers."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import sys
import types
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.loader import interleave
from reconciler.loader.dataset import StreamingDataset
from reconciler.loader.formats import RecordFormat
from reconciler.loader.pipeline import Interleave, PipelineMethods, Source, Stage
from reconciler.loader.resolve import SourceObject
from reconciler.loader.storeset import StoreSet
from reconciler.model import LocalStoreSpec
from tests.unit.loader.test_sharding import make_store


class ListSource(PipelineMethods):
    """A dataset of a list, with the exact state and the epoch semantics of StreamingDataset."""

    def __init__(self, name: str, items: list[Any]) -> None:
        self.name = name
        self.items = items
        self.epoch = 0
        self._saved = 0
        self._live: int | None = None

    def __iter__(self) -> Iterator[Any]:
        self._live = self._saved
        while self._live < len(self.items):
            item = self.items[self._live]
            self._live += 1
            yield [self.name, self.epoch, item]
        self._saved = 0

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "epoch": self.epoch, "pos": self._saved if self._live is None else self._live}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        assert state["name"] == self.name
        self.epoch, self._saved, self._live = int(state["epoch"]), int(state["pos"]), None

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self._saved, self._live = epoch, 0, None


# Module-level functions: a pipeline pickles into spawned workers only with these.
def tag(item: Any) -> Any:
    return ["m", item]


def keep(item: Any) -> bool:
    return zlib.crc32(json.dumps(item).encode()) % 3 != 0


def record_id(record: Mapping[str, Any]) -> str:
    return str(record["id"])


def no_sevens(record_id: str) -> bool:
    return not record_id.endswith("7")


# A pipeline spec: ("list", items) | ("chain", spec, ops) | ("interleave", [(spec, weight)], seed, stopping).
ops = st.one_of(
    st.tuples(st.just("map")),
    st.tuples(st.just("filter")),
    st.tuples(st.just("take"), st.integers(0, 12)),
    st.tuples(st.just("skip"), st.integers(0, 4)),
    st.tuples(st.just("batch"), st.integers(1, 4), st.booleans()),
)
# Lengths drawn uniformly (a drawn list is mostly short), so a skip or take usually leaves items to resume into.
leaves = st.tuples(st.just("list"), st.integers(0, 15).map(lambda n: [i * 7 % 10 for i in range(n)]))
specs = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.tuples(st.just("chain"), inner, st.lists(ops, min_size=1, max_size=4)),
        st.tuples(
            st.just("interleave"),
            st.lists(st.tuples(inner, st.floats(0.1, 5.0)), min_size=1, max_size=3),
            st.integers(0, 3),
            st.sampled_from(["first_exhausted", "all_exhausted"]),
        ),
    ),
    max_leaves=5,
)


def build(spec: Any, names: Iterator[int] | None = None) -> Source:
    """A fresh pipeline of `spec`: leaves are named in build order, so two builds have the same names."""
    names = names if names is not None else iter(range(100))
    if spec[0] == "list":
        return ListSource(f"s{next(names)}", spec[1])
    if spec[0] == "chain":
        out: Any = build(spec[1], names)
        for op in spec[2]:
            if op[0] == "map":
                out = out.map(tag)
            elif op[0] == "filter":
                out = out.filter(keep)
            elif op[0] == "take":
                out = out.take(op[1])
            elif op[0] == "skip":
                out = out.skip(op[1])
            else:
                out = out.batch(op[1], drop_last=op[2])
        return out
    children = [build(child, names) for child, _ in spec[1]]
    return interleave(children, [w for _, w in spec[1]], seed=spec[2], stopping=spec[3])


def pipelines(spec: Any) -> Any:
    """`spec` with a stage on top when it is a bare list, so every example exercises at least one stage."""
    return spec if spec[0] != "list" else ("chain", spec, [("map",)])


def drain(pipeline: Source, limit: int | None = None) -> list[Any]:
    out: list[Any] = []
    if limit == 0:
        return out
    it = iter(pipeline)
    for item in it:
        out.append(item)
        if limit is not None and len(out) >= limit:
            break
    return out


@example(spec=("chain", ("list", [1, 2, 3, 4, 5]), [("skip", 2)]), stops=[1], epoch=0)
@settings(max_examples=300, deadline=None)
@given(spec=specs.map(pipelines), stops=st.lists(st.integers(0, 12), min_size=1, max_size=4), epoch=st.integers(0, 2))
def test_a_resume_at_any_point_of_any_pipeline_continues_exactly(spec: Any, stops: list[int], epoch: int) -> None:
    whole = build(spec)
    whole.set_epoch(epoch)
    uninterrupted = drain(whole)
    got: list[Any] = []
    state: dict[str, Any] | None = None
    for stop in [*stops, None]:
        pipeline = build(spec)
        if state is not None:
            pipeline.load_state_dict(json.loads(json.dumps(state)))  # a checkpoint is plain JSON
            pipeline = pickle.loads(pickle.dumps(pipeline))  # and a loaded pipeline still goes to workers
        pipeline.set_epoch(epoch)  # the training loop's call for the epoch it resumes keeps the state
        got += drain(pipeline, stop)
        state = pipeline.state_dict()
    assert got == uninterrupted
    again = build(spec)
    again.set_epoch(epoch)
    assert drain(again) == uninterrupted  # deterministic


chains = st.tuples(st.just("chain"), leaves, st.lists(ops.filter(lambda op: op[0] != "filter"), min_size=1, max_size=5))


def without_filter(spec: Any) -> bool:
    return "'filter'" not in repr(spec)


def revalued(spec: Any) -> Any:
    """`spec` with other item values in lists of the same lengths."""
    if spec[0] == "list":
        return ("list", [v + 100 for v in spec[1]])
    if spec[0] == "chain":
        return ("chain", revalued(spec[1]), spec[2])
    return ("interleave", [(revalued(child), w) for child, w in spec[1]], spec[2], spec[3])


def expected_count(spec: Any) -> int | None:
    """The output count as the README states it, for chains over one list (None: not a plain chain)."""
    if spec[0] == "list":
        return len(spec[1])
    if spec[0] != "chain" or (count := expected_count(spec[1])) is None:
        return None
    for op in spec[2]:
        if op[0] == "take":
            count = min(op[1], count)
        elif op[0] == "skip":
            count = max(0, count - op[1])
        elif op[0] == "batch":
            count = count // op[1] if op[2] else -(-count // op[1])
    return count


@settings(max_examples=200, deadline=None)
@given(spec=st.one_of(chains, specs.map(pipelines).filter(without_filter)), epoch=st.integers(0, 2))
def test_without_filter_the_count_depends_only_on_the_sources_counts(spec: Any, epoch: int) -> None:
    """What keeps ranks equal: consumers whose sources yield equal counts yield equal counts after the pipeline."""
    runs = []
    for variant in (spec, revalued(spec)):
        pipeline = build(variant)
        pipeline.set_epoch(epoch)
        runs.append(len(drain(pipeline)))
    assert runs[0] == runs[1]
    if (count := expected_count(spec)) is not None:
        assert runs[0] == count


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 30), min_size=1, max_size=4),
    weights=st.lists(st.floats(0.1, 5.0), min_size=4, max_size=4),
    seed=st.integers(0, 5),
)
def test_interleave_stopping_rules(sizes: list[int], weights: list[float], seed: int) -> None:
    def sources() -> list[ListSource]:
        return [ListSource(f"s{i}", list(range(n))) for i, n in enumerate(sizes)]

    everything = interleave(sources(), weights[: len(sizes)], seed=seed, stopping="all_exhausted")
    out = drain(everything)
    per_source = {f"s{i}": [item for name, _, item in out if name == f"s{i}"] for i in range(len(sizes))}
    assert per_source == {f"s{i}": list(range(n)) for i, n in enumerate(sizes)}  # each whole and in order

    first = drain(interleave(sources(), weights[: len(sizes)], seed=seed))
    assert first == out[: len(first)]  # the same draws, until the first source ends
    counts = Counter(name for name, _, _ in first)
    ended = [i for i, n in enumerate(sizes) if counts[f"s{i}"] == n]
    assert ended  # it stops only once a source chosen has nothing left, not before


def test_interleave_respects_the_weights_and_its_seed() -> None:
    weights = [1.0, 2.0, 5.0]
    mixed = interleave([ListSource(f"s{i}", [0] * 10_000) for i in range(3)], weights, seed=7)
    out = drain(mixed, 8000)
    share = Counter(name for name, _, _ in out)
    for i, w in enumerate(weights):
        # 8000 draws: the standard deviation of a share is at most 0.56 %; 2 % is over 3.5 of them.
        assert abs(share[f"s{i}"] / 8000 - w / sum(weights)) < 0.02
    other = drain(interleave([ListSource(f"s{i}", [0] * 10_000) for i in range(3)], weights, seed=8), 8000)
    assert [name for name, _, _ in out] != [name for name, _, _ in other]
    shifted = interleave([ListSource(f"s{i}", [0] * 10_000) for i in range(3)], weights, seed=7)
    shifted.set_epoch(1)
    assert [name for name, _, _ in drain(shifted, 8000)] != [name for name, _, _ in out]  # another epoch, another mix


@pytest.mark.parametrize("stops", [[1023, 1], [1024, 1000, 1], [1, 2046, 500]])
def test_interleave_resumes_exactly_across_blocks_of_draws(stops: list[int]) -> None:
    def mixed() -> Interleave:
        return interleave([ListSource("a", [0] * 2000), ListSource("b", [0] * 1500)], [2.0, 1.0], seed=3)

    uninterrupted = drain(mixed())
    got: list[Any] = []
    state: dict[str, Any] | None = None
    for stop in [*stops, None]:
        part = mixed()
        if state is not None:
            part.load_state_dict(state)
        got += drain(part, stop)
        state = part.state_dict()
    assert got == uninterrupted and len(got) > 2048


def test_all_exhausted_renormalises_over_the_sources_left() -> None:
    mixed = interleave(
        [ListSource("short", [0] * 50), ListSource("a", [0] * 5000), ListSource("b", [0] * 5000)],
        [10.0, 1.0, 3.0],
        seed=1,
        stopping="all_exhausted",
    )
    out = [name for name, _, _ in drain(mixed)]
    after_short = out[len(out) - out[::-1].index("short") :]
    tail = Counter(after_short[:4000])  # a and b both have records left throughout these
    assert len(after_short) >= 4000 and abs(tail["a"] / 4000 - 1 / 4) < 0.03  # 1 : 3, not 1 : (3 + 10)


def test_take_stops_without_reading_the_next_item_and_closes_the_dataset(tmp_path: Path) -> None:
    from reconciler.loader.cache import ObjectCache

    store, objects = make_store([5, 5, 5])
    ds = StreamingDataset(objects, {"mem": store}, cache=ObjectCache(tmp_path), worker_info=lambda: None)
    head = ds.map(record_id).take(3)
    assert drain(head) == ["0-0", "0-1", "0-2"]
    assert ds.state_dict()["generations"] == [{"world": 1, "workers": 1, "counts": {"0": 3}}]
    for obj in objects:  # the source's iteration was closed: no object is still held open ahead
        lock = ObjectCache(tmp_path).lock(str(obj.md5))
        lock.acquire(timeout=0)
        lock.release()


def test_a_state_of_another_pipeline_is_refused() -> None:
    a = ListSource("s0", [1, 2, 3]).take(2)
    drain(a, 1)
    with pytest.raises(ValueError, match="another pipeline"):
        ListSource("s0", [1, 2, 3]).take(3).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="another pipeline"):
        ListSource("s0", [1, 2, 3]).skip(2).load_state_dict(a.state_dict())


def test_a_refused_state_leaves_every_dataset_of_the_pipeline_as_it_was() -> None:
    saved = interleave([ListSource("a", [1, 2, 3]).take(2), ListSource("b", [4, 5]).take(3)], seed=1)
    drain(saved, 3)
    a = ListSource("a", [1, 2, 3])
    other = interleave([a.take(2), ListSource("b", [4, 5]).take(4)], seed=1)
    with pytest.raises(ValueError, match="another pipeline"):
        other.load_state_dict(saved.state_dict())
    assert a.state_dict()["pos"] == 0  # not half loaded: a's part of the state fitted, b's take did not


def test_one_dataset_in_two_branches_is_refused() -> None:
    ds = ListSource("s0", [1, 2, 3])
    with pytest.raises(ValueError, match="appears twice"):
        interleave([ds.map(tag), ds.filter(keep)])


def test_bad_arguments_fail_with_one_clear_error() -> None:
    ds = ListSource("s0", [1])
    with pytest.raises(ValueError, match="batch needs an integer >= 1"):
        ds.batch(0)
    with pytest.raises(ValueError, match="take needs an integer >= 0"):
        ds.take(-1)
    with pytest.raises(ValueError, match=r"skip needs an integer >= 0, got 2\.5"):
        ds.skip(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed needs an integer"):
        interleave([ds], seed="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weights"):
        interleave([ds, ListSource("s1", [2])], [1.0])
    with pytest.raises(ValueError, match="finite numbers > 0"):
        interleave([ds, ListSource("s1", [2])], [1.0, 0.0])
    with pytest.raises(ValueError, match="stopping"):
        interleave([ds], stopping="longest")  # type: ignore[arg-type]


def test_a_lambda_is_refused_when_the_pipeline_is_pickled_for_spawned_workers() -> None:
    pipeline = ListSource("s0", [1, 2]).map(lambda x: x)
    assert drain(pipeline) == [["s0", 0, 1], ["s0", 0, 2]]  # unpickled (no workers, or fork) it runs
    with pytest.raises(TypeError, match=r"map\(.*<lambda>.*cannot be pickled.*spawn.*module level"):
        pickle.dumps(pipeline)
    with pytest.raises(TypeError, match=r"filter\(.*cannot be pickled.*spawn"):
        pickle.dumps(ListSource("s0", [1]).filter(lambda x: True))


def test_pipelines_are_torch_iterable_datasets_when_torch_is_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(2):  # a second torch module (another test's stand-in) gets pipelines of its own IterableDataset

        class IterableDataset:
            pass

        data = types.ModuleType("torch.utils.data")
        data.IterableDataset = IterableDataset  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
        monkeypatch.setitem(sys.modules, "torch.utils", types.ModuleType("torch.utils"))
        monkeypatch.setitem(sys.modules, "torch.utils.data", data)
        mixed = interleave([ListSource("s0", [1, 2]).map(tag).batch(2), ListSource("s1", [3])])
        assert isinstance(mixed, IterableDataset) and isinstance(mixed.sources[0], IterableDataset)
        copy = pickle.loads(pickle.dumps(mixed))  # a run-time class has no import path: the worker gets the plain one
        assert type(copy) is Interleave and drain(copy) == drain(mixed)


def returning(value: Any) -> Callable[[], Any]:
    return lambda: value


def consumer_pipeline(store: Any, objects: list[SourceObject], rank: int, world: int, info: Any, kind: int) -> Stage:
    def ds(objs: list[SourceObject], **kw: Any) -> StreamingDataset:
        return StreamingDataset(objs, {"mem": store}, rank=rank, world_size=world, worker_info=lambda: info, **kw)

    if kind == 0:
        return ds(objects, shuffle=True, seed=1).map(record_id).filter(no_sevens).batch(3)
    if kind == 1:
        return ds(objects).map(record_id).skip(1).take(9)
    return interleave(
        [ds(objects).map(record_id), ds(objects[::-1], shuffle=True).map(record_id)], [1.0, 2.0], seed=4
    ).batch(2, drop_last=True)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 20), min_size=1, max_size=5),
    world=st.integers(1, 3),
    workers=st.integers(0, 3),
    kind=st.integers(0, 2),
    stops=st.lists(st.integers(0, 8), min_size=9, max_size=9),
)
def test_each_consumer_of_the_real_dataset_resumes_its_pipeline_exactly(
    sizes: list[int], world: int, workers: int, kind: int, stops: list[int]
) -> None:
    store, objects = make_store(sizes)
    shape = [
        (rank, None if workers == 0 else SimpleNamespace(id=w, num_workers=workers))
        for rank in range(world)
        for w in range(max(workers, 1))
    ]
    union: Counter[str] = Counter()
    unfiltered: Counter[str] = Counter()  # kind 0's datasets alone, consumer by consumer
    dropped: set[int] = set()
    for (rank, info), stop in zip(shape, stops, strict=False):
        whole = drain(consumer_pipeline(store, objects, rank, world, info, kind))
        first = consumer_pipeline(store, objects, rank, world, info, kind)
        before = drain(first, stop)
        resumed = consumer_pipeline(store, objects, rank, world, info, kind)
        resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
        assert before + drain(resumed) == whole
        union += Counter(r for item in whole for r in (item if isinstance(item, list) else [item]))
        if kind == 0:
            bare = StreamingDataset(
                objects, {"mem": store}, rank=rank, world_size=world, worker_info=returning(info),
                shuffle=True, seed=1,
            )
            unfiltered += Counter(drain(bare.map(record_id)))
            dropped.add(bare.dropped)
    ids = Counter(f"{i}-{j}" for i, n in enumerate(sizes) for j in range(n))
    if kind == 0:
        # The consumers' shares together are the dataset, each record once, but for the remainder that the
        # default partition="drop" leaves out so that ranks are equal: at most world - 1, counted in ds.dropped.
        assert not unfiltered - ids
        missing = sum((ids - unfiltered).values())
        assert missing <= world - 1 and dropped == {missing}
        assert union == Counter(r for r in unfiltered.elements() if no_sevens(r))


# --- the real StreamingDataset in emulated DataLoader worker processes -------------------------------------

_WORKER: SimpleNamespace | None = None  # what torch's get_worker_info() returns in this process


def worker_info() -> SimpleNamespace | None:
    return _WORKER


def training_pipeline(objects: list[SourceObject], stores: Mapping[str, Any], rank: int, world: int) -> Stage:
    """Records of a rank, mixed 3:1 with a second view of the data, filtered and batched."""
    first = StreamingDataset(
        objects, stores, rank=rank, world_size=world, shuffle=True, seed=3, worker_info=worker_info
    )
    second = StreamingDataset(objects[::-1], stores, rank=rank, world_size=world, worker_info=worker_info)
    mixed = interleave(
        [first.map(record_id), second.map(record_id).skip(2)], [3.0, 1.0], seed=5, stopping="all_exhausted"
    )
    return mixed.filter(no_sevens).batch(4)


def _worker(
    pipeline: Stage, worker: int, workers: int, state: dict[str, Any] | None, stop: int | None, out: Any
) -> None:
    """A DataLoader worker: its own copy of the pipeline (inherited by fork, unpickled by spawn), its worker info."""
    global _WORKER
    _WORKER = SimpleNamespace(id=worker, num_workers=workers)
    if state is not None:
        pipeline.load_state_dict(state)
    pipeline.set_epoch(1)
    batches = drain(pipeline, stop)
    out.put((worker, batches, pipeline.state_dict()))


def run_workers(method: str, pipelines: list[Stage], states: list[Any], stops: list[int | None]) -> list[Any]:
    ctx: Any = multiprocessing.get_context(method)  # typeshed's BaseContext lacks Process, which both have
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(p, w, len(pipelines), s, stop, out))
        for w, (p, s, stop) in enumerate(zip(pipelines, states, stops, strict=True))
    ]
    for proc in procs:
        proc.start()
    results = sorted((out.get(timeout=120) for _ in procs), key=lambda r: r[0])
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    return results


def disk_world(tmp_path: Path, sizes: list[int]) -> tuple[StoreSet, list[SourceObject]]:
    """Shards on local disk behind a StoreSet: it pickles into a spawned worker (a MemoryStore holds a lock)."""
    (tmp_path / "data").mkdir()
    stores = StoreSet({"disk": LocalStoreSpec("disk", str(tmp_path / "data"))})
    objects = []
    for i, n in enumerate(sizes):
        key = f"shards/{i:03d}.jsonl"
        (tmp_path / "data" / "shards").mkdir(exist_ok=True)
        (tmp_path / "data" / key).write_bytes(
            b"".join(json.dumps({"id": f"{i}-{j}"}).encode() + b"\n" for j in range(n))
        )
        entry = stores["disk"].stat(key)
        assert entry is not None
        objects.append(SourceObject("disk", key, entry.md5, entry.size, RecordFormat.JSONL))
    return stores, objects


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_of_two_ranks_resume_their_pipelines_exactly(method: str, tmp_path: Path) -> None:
    sizes = [9, 0, 14, 5, 11]
    if method == "fork":
        store, objects = make_store(sizes)  # the real MemoryStore: a forked worker inherits it, unpickled
        stores: Mapping[str, Any] = {"mem": store}
    else:
        stores, objects = disk_world(tmp_path, sizes)
    world, workers = 2, 2
    for rank in range(world):
        whole = [
            b
            for _, b, _ in run_workers(
                method, [training_pipeline(objects, stores, rank, world)] * workers, [None] * workers, [None] * workers
            )
        ]
        first = run_workers(
            method, [training_pipeline(objects, stores, rank, world)] * workers, [None] * workers, [2, 1]
        )
        resumed = run_workers(
            method,
            [training_pipeline(objects, stores, rank, world)] * workers,
            [json.loads(json.dumps(s)) for _, _, s in first],
            [None] * workers,
        )
        for w in range(workers):
            assert first[w][1] + resumed[w][1] == whole[w]  # each worker continues its own copy exactly
        if rank == 0:
            rank0 = Counter(r for batches in whole for batch in batches for r in batch)
        else:
            everything = rank0 + Counter(r for batches in whole for batch in batches for r in batch)
    kept = Counter(r for r in (f"{i}-{j}" for i, n in enumerate(sizes) for j in range(n)) if no_sevens(r))
    # Every kept record once from the first view, and once from the second but for what each consumer skipped
    # and for each view's dropped remainder (partition="drop": ranks equal).
    assert everything == kept + kept - Counter(
        r
        for r in [
            *skipped_by_consumers(objects, stores, world, workers),
            *dropped_by_views(sizes, objects, stores, world, workers),
        ]
        if no_sevens(r)
    )


def dropped_by_views(
    sizes: list[int], objects: list[SourceObject], stores: Mapping[str, Any], world: int, workers: int
) -> list[str]:
    """The records of each of training_pipeline's views that no consumer reads in epoch 1: at most world - 1 a
    view, as many as its datasets count in `dropped`."""
    global _WORKER
    out: list[str] = []
    ids = Counter(f"{i}-{j}" for i, n in enumerate(sizes) for j in range(n))
    try:
        for view in (
            lambda r: StreamingDataset(
                objects, stores, rank=r, world_size=world, shuffle=True, seed=3, worker_info=worker_info
            ),
            lambda r: StreamingDataset(objects[::-1], stores, rank=r, world_size=world, worker_info=worker_info),
        ):
            seen: Counter[str] = Counter()
            counted: set[int] = set()
            for rank in range(world):
                for w in range(workers):
                    _WORKER = SimpleNamespace(id=w, num_workers=workers)
                    ds = view(rank)
                    ds.set_epoch(1)
                    seen += Counter(drain(ds.map(record_id)))
                    counted.add(ds.dropped)
            assert not seen - ids
            missing = ids - seen
            assert sum(missing.values()) <= world - 1 and counted == {sum(missing.values())}
            out += missing.elements()
    finally:
        _WORKER = None
    return out


def skipped_by_consumers(objects: list[SourceObject], stores: Mapping[str, Any], world: int, workers: int) -> list[str]:
    """The 2 records each consumer's skip(2) drops: the first 2 of its share of the second view."""
    global _WORKER
    out: list[str] = []
    try:
        for rank in range(world):
            for w in range(workers):
                _WORKER = SimpleNamespace(id=w, num_workers=workers)
                second = StreamingDataset(objects[::-1], stores, rank=rank, world_size=world, worker_info=worker_info)
                second.set_epoch(1)
                out += drain(second.map(record_id), 2)
    finally:
        _WORKER = None
    return out
