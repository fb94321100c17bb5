"""Records of an ordered list of objects, streamed: cached by md5, dealt out by rank and worker, resumable.

`StreamingDataset(objects, stores)` works on any list of `SourceObject`s (a
registry dataset, a prefix of shards, the final dataset's manifest). Iterating
it yields dicts once each object (or span) is downloaded and verified; memory
is a chunk, a span and, when shuffling, one block of records.

Who reads what is decided in reconciler/loader/sharding.py from record counts
alone (loader/index.py: the manifest's counts, or an index built once per md5):
every rank gets the same number of records, one contiguous stretch of the
epoch's units, and reads only those units. A big JSON Lines object is several
units (spans), read by ranged GET (one for each run of contiguous spans a
consumer reads in order: _Runs) and each checked against its SHA-256 in the index
before any of its records is served; the next span is fetched on a helper
thread while the current one is decoded.

A lone reader (one rank, no workers, a fresh epoch) counts nothing: it reads
each object whole, and a big JSON Lines object whose index is known with one
GET handed on span by span, each span once it hashes to the index's SHA-256 for it
(`_streamed`: downloaded on one helper thread, hashed on another). Without an
index nothing vouches for a span before the whole object's md5 does, so such an
object is verified whole first (README, "Loader speed").
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.context import get_spawning_popen
from pathlib import Path
from typing import Any, BinaryIO, Generic, Literal, Protocol, Self, TypeVar, cast, runtime_checkable

import orjson

from reconciler.loader import state as loader_state
from reconciler.loader.cache import Filling, ObjectCache
from reconciler.loader.formats import (
    CHUNK,
    DatasetFormatError,
    Line,
    RecordFormat,
    check_item,
    decode_marked,
    iter_slots,
    whole_lines,
)
from reconciler.loader.fresh import Listings
from reconciler.loader.index import SPAN_BYTES, IndexStore, RecordIndex, Span, build, span_problem, splits
from reconciler.loader.offline import OfflineReads, read_all
from reconciler.loader.pipeline import PipelineMethods
from reconciler.loader.resolve import SourceObject
from reconciler.loader.sharding import (
    PARTITIONS,
    STATE_VERSION,
    Generation,
    Order,
    Partition,
    epoch_order,
    merge_generations,
    per_rank,
    pieces,
    plan,
    progress_before,
)
from reconciler.loader.verify import verified_read
from reconciler.logs import get_logger
from reconciler.model import Entry
from reconciler.stores.base import ObjectChanged, PermanentStoreError, Store, StoreError, TransientStoreError

# While an object up to this size is read, the next one is opened (its GET sent, its cache lock taken) on a
# helper thread when it is not cached: a cold read of 1 MiB shards spent half its time waiting for each
# response to begin. A larger
# object's read outlasts any round trip, and would keep the next connection idle long enough to time out.
OPEN_AHEAD_MAX = 64 * 1024 * 1024
# How many such objects are opened ahead at once, each on its own helper thread: one ahead left the reader of 1 MiB
# shards waiting for the next response about half its time on a loaded machine, while the helper idled between
# objects as long (the server's time to the first byte varies more than the decoding of a shard).
OPEN_AHEAD = 3
# A published index is ~150 bytes a 4 MiB span: this bounds what a tampered one can make a rank read.
PUBLISHED_INDEX_LIMIT = 64 * 1024 * 1024

_Opened = tuple[contextlib.ExitStack, BinaryIO]


def read_exactly(stream: BinaryIO, size: int) -> bytes:
    """`size` bytes, fewer only at the stream's end: one read() when the stream gives them all at once (a body
    off the socket does), else its pieces joined."""
    data = stream.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    left = size - len(data)
    while left and (more := stream.read(left)):
        parts.append(more)
        left -= len(more)
    return b"".join(parts)


def _read_at_most(stream: BinaryIO, limit: int) -> bytes:
    """The whole body (a read may return less than asked), ValueError once it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise ValueError(f"longer than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


K = TypeVar("K")
V = TypeVar("V")
S = TypeVar("S")


class _Ahead(Generic[K, V]):
    """Work done on helper threads ahead of the reader, for up to `depth` keys in the reader's order: each taken
    when the reader gets there, else waited out (a download does not outlive its reader) and its result given
    `_unused`."""

    def __init__(self, work: Callable[[K], V], name: str, depth: int = 1) -> None:
        self._work = work
        self._name = name
        self._depth = depth
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: list[tuple[K, Future[V]]] = []  # in the reader's order

    def ahead(self, key: K) -> None:
        if any(k == key for k, _ in self._ahead):
            return
        if len(self._ahead) >= self._depth:
            self._discard(1)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._depth, thread_name_prefix=self._name)
        self._ahead.append((key, self._pool.submit(self._work, key)))

    def take(self, key: K) -> Future[V] | None:
        """The work done ahead for `key` (its failure raised by .result()), else None. Work for keys before it is
        discarded (the reader has gone past them); work for keys after it, or all when `key` has none, is kept."""
        for place, (k, future) in enumerate(self._ahead):
            if k == key:
                self._discard(place)
                self._ahead.pop(0)
                return future
        return None

    def _discard(self, count: int | None = None) -> None:
        """The first `count` pieces of work (all when None) waited out and given `_unused`."""
        gone, self._ahead = self._ahead[:count], self._ahead[len(self._ahead) if count is None else count :]
        for _, future in gone:
            try:
                done = future.result()
            except Exception:  # it was never going to be read: its failure is nobody's
                continue
            self._unused(done)

    def _unused(self, done: V) -> None:
        """What becomes of a result nobody read."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._discard()
        if self._pool is not None:
            self._pool.shutdown()


class _OpenAhead(_Ahead[SourceObject, _Opened]):
    """Objects opened in the reader's order, the next one on a helper thread while the current one is read."""

    def __init__(self, open_: Callable[[SourceObject], contextlib.AbstractContextManager[BinaryIO]]) -> None:
        def enter(obj: SourceObject) -> _Opened:
            stack = contextlib.ExitStack()
            try:
                stream = stack.enter_context(open_(obj))
            except BaseException:
                stack.close()
                raise
            return stack, stream

        self._enter = enter
        super().__init__(enter, "pixel-loader-open", depth=OPEN_AHEAD)

    def open(self, obj: SourceObject) -> _Opened:
        """`obj` opened: the one opened ahead if it is that object (its failure, if it failed, raised now)."""
        future = self.take(obj)
        return future.result() if future is not None else self._enter(obj)

    def _unused(self, done: _Opened) -> None:
        """Close what was opened ahead and not read (the iteration stopped): its cache lock is released."""
        done[0].close()


class _SpanAhead(_Ahead[tuple[SourceObject, Span], bytes]):
    """The next span's verified bytes fetched on a helper thread while the current span's records are decoded.

    A ranged GET, its digest and the cache write of one span overlap the decoding of the one before: read one at
    a time, a lone reader of a big object spent as long waiting for bytes as decoding them. Only verified bytes
    come out of a fetch, and a fetch's failure is raised when its span is reached, not before."""

    def __init__(self, fetch: Callable[[SourceObject, Span], bytes]) -> None:
        super().__init__(lambda key: fetch(*key), "pixel-loader-span")

    def bytes_of(self, obj: SourceObject, span: Span) -> bytes | None:
        """The span's bytes if they were fetched ahead (its fetch's failure raised now), else None."""
        future = self.take((obj, span))
        return future.result() if future is not None else None


_Where = tuple[str, str, int]  # (store, key, byte offset)


class _Runs:
    """One ranged GET over each run of contiguous spans of one object that a consumer reads in order, instead of
    one GET a span: serving 4 ranks their spans one GET each cost SeaweedFS 3x the CPU of one GET of the whole.

    A span is read off its run's stream whole and handed to the caller, which checks it against the span's digest
    before any of it is used (as a span's own GET is checked). A span that is not where the open stream is (one
    served from the cache meanwhile, or after a failed read) opens the rest of its run anew."""

    def __init__(self, stops: Mapping[_Where, int],
                 open_: Callable[[SourceObject, int, int], contextlib.AbstractContextManager[BinaryIO]]) -> None:
        self._stops = stops  # where a span of a run begins -> where its run ends
        self._open = open_
        self._at: _Where | None = None  # where the open stream is
        self._end = 0  # where it ends: a span repeated (padding wraps around) may belong to a shorter run
        self._stack: contextlib.ExitStack | None = None
        self._stream: BinaryIO | None = None
        self._lock = threading.Lock()  # a span is fetched on the reader's thread or its helper's, never both
        self.opened = 0

    def read(self, obj: SourceObject, span: Span) -> bytes | None:
        """The span's bytes, not yet verified, off its run's stream; None when it is in no run (read it alone)."""
        where = (obj.store, obj.key, span.start)
        stop = self._stops.get(where)
        if stop is None:
            return None
        with self._lock:
            try:
                if self._at != where or self._stream is None or span.stop > self._end:
                    self.close()
                    stack = contextlib.ExitStack()
                    self._stream = stack.enter_context(self._open(obj, span.start, stop))
                    self._stack, self._end = stack, stop
                    self.opened += 1
                data = read_all(cast(BinaryIO, _Window(self._stream, span.stop - span.start)))
            except BaseException:
                self.close()
                raise
            self._at = (obj.store, obj.key, span.stop)
            return data

    def close(self) -> None:
        stack, self._stack, self._stream, self._at = self._stack, None, None, None
        if stack is not None:
            stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.close()


def run_stops(units: Sequence[Unit], objects: Sequence[SourceObject]) -> dict[_Where, int]:
    """Where each span read in a run of two or more contiguous spans of one object (in `units`' order) begins,
    mapped to where its run ends: the spans one ranged GET can bring."""
    stops: dict[_Where, int] = {}
    run: list[Span] = []

    def close_run() -> None:
        if len(run) > 1:
            obj = objects[current_obj]
            stops.update(((obj.store, obj.key, s.start), run[-1].stop) for s in run)

    current_obj = -1
    for unit in units:
        span = unit.span
        if span is not None and run and unit.obj == current_obj and span == run[-1]:
            continue  # the same span again (it straddles two shuffle blocks): kept in memory, not read twice
        if span is not None and run and unit.obj == current_obj and span.start == run[-1].stop:
            run.append(span)
            continue
        close_run()
        run = [span] if span is not None else []
        current_obj = unit.obj
    close_run()
    return stops


OnError = Literal["raise", "skip"]
WorkerInfo = Callable[[], Any]  # returns an object with .id and .num_workers, or None outside a worker

# Records a consumer shuffles among at once (sharding.py's blocks): its memory when shuffling is one block of
# undecoded lines, 16k lines of 2 KiB = 32 MiB. MosaicML's default is 256k samples, read from local shards.
DEFAULT_SHUFFLE_BLOCK = 1 << 14


class DatasetChanged(StoreError):
    """An object is no longer the one the dataset was resolved to: reading on would mix versions."""


def torch_worker_info() -> Any:
    """torch's DataLoader worker info when torch is in use (already imported), else None: never imports torch."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    from torch.utils.data import get_worker_info  # type: ignore[import-not-found, unused-ignore]

    return get_worker_info()


def distributed_rank() -> tuple[int, int]:
    """(rank, world_size) from torch.distributed's environment (RANK / WORLD_SIZE), else (0, 1)."""
    rank = int(os.environ.get("RANK", "0") or 0)
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    return rank, world


@runtime_checkable
class ReadsRanges(Protocol):
    """A store that reads part of an object (S3: a ranged GET)."""

    def open_range(
        self, key: str, start: int, stop: int, *, if_match: str | None = None
    ) -> contextlib.AbstractContextManager[BinaryIO]: ...


@dataclass(frozen=True, slots=True)
class Unit:
    """What the epoch orders and deals: an object read whole, or one span of a big object."""

    obj: int  # index into the dataset's objects
    records: int
    span: Span | None = None
    index: RecordIndex | None = None  # a lone reader's whole object, handed on span by span as this index cuts it


_OpenVersion = Callable[[str | None], contextlib.AbstractContextManager[BinaryIO]]  # if_match -> stream
_Slot = tuple[SourceObject, int, object]  # the object, the record's line (or item) number, its undecoded payload


@dataclass(slots=True)
class _Progress:
    past: tuple[Generation, ...]
    world: int
    workers: int
    me: int
    taken: int

    def generations(self) -> list[Generation]:
        return [*self.past, Generation(self.world, self.workers, {self.me: self.taken})]


class _Window(io.RawIOBase):
    """Bytes [0, size) of a stream positioned at a range's start: what a store without ranged reads gives."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        want = self._left if n is None or n < 0 else min(n, self._left)
        data = self._stream.read(want) if want else b""
        self._left -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


_set_class = object.__dict__["__class__"].__set__  # object's own setter: StreamingDataset's __class__ is a property


class StreamingDataset(PipelineMethods):  # .map/.filter/.take/.skip/.batch: loader/pipeline.py
    def __init__(
        self,
        objects: Sequence[SourceObject],
        stores: Mapping[str, Store],
        *,
        name: str = "dataset",
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        cache: ObjectCache | None = None,
        on_error: OnError = "raise",
        worker_info: WorkerInfo = torch_worker_info,
        offline: bool = False,
        partition: Partition = "drop",
        shuffle_block: int = DEFAULT_SHUFFLE_BLOCK,
        index_dir: str | Path | None = None,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f'on_error must be "raise" or "skip", got {on_error!r}')
        if partition not in PARTITIONS:
            raise ValueError(f'partition must be "drop" or "pad", got {partition!r}')
        if isinstance(shuffle_block, bool) or not isinstance(shuffle_block, int) or shuffle_block < 1:
            raise ValueError(f"shuffle_block must be a positive number of records, got {shuffle_block!r}")
        env_rank, env_world = distributed_rank()
        self.rank = env_rank if rank is None else rank
        self.world_size = env_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in 0..world_size-1 (world_size {self.world_size})")
        self.objects = tuple(objects)
        self.stores = stores
        self.name = name
        self.shuffle = shuffle
        self.seed = seed
        self.cache = cache
        self.on_error: OnError = on_error
        self.worker_info = worker_info
        self.offline = offline
        self._reads = OfflineReads(offline)  # reconciler/loader/offline.py: the cache when S3 is not used
        self.partition: Partition = partition
        self.shuffle_block = shuffle_block
        if index_dir is None and cache is not None:
            index_dir = cache.root / "indexes"
        self.indexes = IndexStore(index_dir) if index_dir is not None else None
        self.epoch = 0
        # The epoch in memory shared with DataLoader workers forked or spawned from this process: a persistent
        # worker (persistent_workers=True) keeps its copy of the dataset from epoch to epoch, and set_epoch()
        # is called on the main process's copy.
        self._shared_epoch: Any = multiprocessing.RawValue("q", 0)
        self.skipped = 0
        self.dropped = 0  # records of the remainder this consumer's last pass left out (all ranks together)
        self.padded = 0  # repeats its last pass added (all ranks together)
        self._units: tuple[Unit, ...] | None = None  # pickled into workers: they need not index again
        self._saved: list[Generation] = []  # progress to resume from when the next iteration starts
        self._live: _Progress | None = None
        self._last_span: tuple[str, bytes] | None = None  # (md5, verified bytes)
        self._listings = Listings(self.objects)  # whether a cached object is still current: loader/fresh.py
        self._versions: dict[tuple[str, str], str] = {}  # (store, key) -> ETag a HEAD showed holding its md5

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """torch's DataLoader tells an iterable dataset by isinstance(ds, IterableDataset), which reads this: a
        dataset made before torch was imported becomes the torch IterableDataset subclass here, in place."""
        cls = type(self)
        if cls is StreamingDataset and "torch" in sys.modules:
            try:
                from reconciler.loader.torch_compat import TorchStreamingDataset
            except ImportError:  # a torch without torch.utils.data (half imported, or a stand-in): stay as is
                return cls
            try:
                _set_class(self, TorchStreamingDataset)
            except TypeError:  # a torch whose IterableDataset has another instance layout: stay as is
                return cls
            return TorchStreamingDataset
        return cls

    def __getstate__(self) -> dict[str, Any]:
        state = {**self.__dict__, "_last_span": None}  # a DataLoader worker reads its own spans
        if get_spawning_popen() is None:
            # Pickled for anything but a process being started (shared memory goes only there): a copy.
            state["_shared_epoch"] = None
        return state

    # --- record counts ---------------------------------------------------------------------------------------

    def units(self) -> tuple[Unit, ...]:
        """Every unit of the dataset in object order, with its record count (indexing objects not yet indexed)."""
        if self._units is None:
            self._units = tuple(unit for i, obj in enumerate(self.objects) for unit in self._units_of(i, obj))
        return self._units

    def _units_of(self, i: int, obj: SourceObject) -> list[Unit]:
        if obj.records is not None and not splits(obj.fmt, obj.size):
            return [Unit(i, obj.records)]
        index = self.record_index(obj)
        if index.spans:
            return [Unit(i, span.records, span) for span in index.spans]
        return [Unit(i, index.records)]

    def record_index(self, obj: SourceObject) -> RecordIndex:
        """The object's index: kept by md5, else the one apply published for it (one small GET, checked against
        the registry's digest), else built from its bytes (read through the cache); kept by md5 either way."""
        if obj.md5 is None:
            return self._build_index(obj)
        if self.indexes is None:
            return self._known_index(obj) or self._build_index(obj)
        found = self.indexes.get(obj.md5, obj.fmt)
        if found is not None:
            return found
        # One process per machine counts an object (DataLoader workers all ask at once); the others wait for
        # its index rather than parse the same bytes again. A counter that takes too long is not waited for.
        with self.indexes.building(obj.md5, obj.fmt):
            return self._known_index(obj) or self._build_index(obj)

    def _known_index(self, obj: SourceObject) -> RecordIndex | None:
        """The object's index without reading the object: kept by md5, else the one apply published (kept
        from then on); None when neither is there."""
        assert obj.md5 is not None
        found = self.indexes.get(obj.md5, obj.fmt) if self.indexes is not None else None
        if found is None and (found := self._published_index(obj)) is not None and self.indexes is not None:
            self.indexes.put(found, obj.fmt)
        return found

    def _published_index(self, obj: SourceObject) -> RecordIndex | None:
        """The index apply wrote beside the object (`manifests/record_index.py`), when the registry vouches for
        it and it describes these bytes; anything else is ignored with a warning, and the records counted here."""
        if obj.published_index is None or obj.md5 is None or self.offline:
            return None
        key, digest = obj.published_index
        try:
            with self.stores[obj.store].open(key) as stream:
                data = _read_at_most(stream, PUBLISHED_INDEX_LIMIT)
            got = hashlib.md5(data).hexdigest()
            if got != digest:
                raise ValueError(f"its md5 is {got}, the registry records {digest}")
            index = RecordIndex.from_json(json.loads(data))
            if index.md5 != obj.md5 or index.size != obj.size:
                raise ValueError(f"it describes {index.size} bytes with md5 {index.md5}")
            if bool(index.spans) != splits(obj.fmt, obj.size):
                raise ValueError("it is cut into spans other than this loader cuts them")
        except (StoreError, OSError, ValueError, KeyError, TypeError) as exc:
            get_logger("pixel.loader").warning(
                "record index not used; counting the object's records instead",
                dataset=self.name, object=f"{obj.store}:{obj.key}", index=f"{obj.store}:{key}", reason=str(exc),
            )
            return None
        return index

    def _build_index(self, obj: SourceObject) -> RecordIndex:
        with self._open(obj) as stream:
            index = build(stream, key=obj.key, fmt=obj.fmt, split=splits(obj.fmt, obj.size))
        if obj.md5 is not None and index.md5 != obj.md5:
            raise DatasetChanged(
                f"{obj.store}:{obj.key}: read {index.size} bytes with md5 {index.md5}, expected md5 {obj.md5}; "
                "load the dataset again",
                key=obj.key,
            )
        if self.indexes is not None:
            self.indexes.put(index, obj.fmt)
        if self.cache is not None:
            self.cache.settle()  # the copy just read is in the cache under its name: spans are read from it
        return index

    def __len__(self) -> int:
        """Records each rank yields in one whole epoch (all its DataLoader workers together)."""
        return per_rank(sum(unit.records for unit in self.units()), self.world_size, self.partition)

    # --- epochs and state ---------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Another epoch: another order when shuffling. The progress of a loaded state is kept for its own epoch."""
        if epoch != self.epoch:
            self.epoch = epoch
            self._saved = []
            self._live = None
        if self._shared_epoch is not None:
            self._shared_epoch.value = epoch

    @property
    def digest(self) -> str:
        return loader_state.digest(self.objects)

    def _worker(self) -> tuple[int, int]:
        """(this process's worker id, number of workers): (0, 1) outside a DataLoader worker."""
        info = self.worker_info()
        return (0, 1) if info is None else (int(info.id), int(info.num_workers))

    def state_dict(self) -> dict[str, Any]:
        """Exactly the records yielded so far (by this consumer, in this process), as plain JSON-able data."""
        if self._live is not None:
            generations = self._live.generations()
        else:
            # Not started: nothing yielded yet, but say by whom, so merged states of all consumers are complete.
            worker, workers = self._worker()
            me = self.rank * workers + worker
            try:
                past, start = progress_before(self._saved, world=self.world_size, workers=workers, consumer=me)
            except ValueError:
                generations = self._saved
            else:
                generations = [*past, Generation(self.world_size, workers, {me: start})]
        return {
            "version": STATE_VERSION,
            "dataset": self.name,
            "objects": self.digest,
            "epoch": self.epoch,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "partition": self.partition,
            "shuffle_block": self.shuffle_block,
            "generations": [g.to_json() for g in generations],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume: the next iteration continues where `state` was taken (also with other ranks or workers).

        ValueError, saying what is wrong, for anything that is not a state of this dataset."""
        epoch, generations = loader_state.check(state)
        if state.get("objects") != self.digest:
            raise ValueError(
                f"the state was saved over other objects than {self.name} has now (the dataset changed): "
                "an exact resume is impossible"
            )
        saved = tuple(state.get(k) for k in ("seed", "shuffle", "partition", "shuffle_block"))
        if saved != (self.seed, self.shuffle, self.partition, self.shuffle_block):
            raise ValueError(
                f"the state was saved with seed={saved[0]} shuffle={saved[1]} partition={saved[2]} "
                f"shuffle_block={saved[3]}, this dataset has seed={self.seed} shuffle={self.shuffle} "
                f"partition={self.partition} shuffle_block={self.shuffle_block}"
            )
        self.epoch = epoch
        if self._shared_epoch is not None:
            self._shared_epoch.value = self.epoch  # the workers resume this epoch too
        self._saved = generations
        self._live = None

    @staticmethod
    def merge_states(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """One state from those of every rank and worker of one run (e.g. gathered with all_gather_object)."""
        if not states:
            raise ValueError("no states to merge")
        first = states[0]
        for state in states:
            for field in ("version", "objects", "epoch", "seed", "shuffle", "partition", "shuffle_block"):
                if state.get(field) != first.get(field):
                    raise ValueError(f"the states to merge differ in {field}")
        merged = merge_generations([loader_state.check(s)[1] for s in states])
        return {**first, "generations": [g.to_json() for g in merged]}

    # --- iteration -----------------------------------------------------------------------------------------

    def _alone(self, workers: int) -> bool:
        """One consumer reading a fresh epoch in which every object is read whole (spans, in order when not
        shuffled, are their object): it reads everything in order, so nothing needs counting first, and the
        first record comes as soon as the first object is verified."""
        return (
            self.world_size * workers == 1
            and not self._saved
            and self._units is None
            and (not self.shuffle or not any(splits(o.fmt, o.size) for o in self.objects))
        )

    def _lone_units(self, i: int) -> list[Unit]:
        """How a lone reader reads object `i`: span by span when it is a big JSON Lines object with an index (each
        span verified against the index's SHA-256 and its records yielded before the whole object is read), else
        whole (verified whole before its first record).

        A big object with no index yet is read whole, as any object: the md5s of its spans would come from the
        very bytes being read, and only the object's md5 vouches for those, so nothing can be yielded before
        the whole object is checked. Indexing it here would add a pass (and an fsync to read the spans back from
        the cache) to that first read; the index comes instead from apply (published beside a registered
        dataset: one small GET here) or from any reader that counts (ranks, workers, len()), kept by md5 in
        index_dir."""
        obj = self.objects[i]
        if obj.md5 is None or not splits(obj.fmt, obj.size):
            return [Unit(i, 0)]
        index = self._known_index(obj)
        if index is None or not index.spans:
            return [Unit(i, 0)]
        return [Unit(i, index.records, index=index)]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._shared_epoch is not None and self._shared_epoch.value != self.epoch:
            self.set_epoch(self._shared_epoch.value)  # a persistent worker: the epoch the main process set
        self._reads.new_pass()
        self._listings.new_pass()
        worker, workers = self._worker()
        me = self.rank * workers + worker
        block = self.shuffle_block if self.shuffle else 0
        order = Order(self.seed, self.epoch, block)
        if self._alone(workers):
            # The same slots, units and blocks as the plan would give one consumer: its state is the same too.
            objects = epoch_order(len(self.objects), seed=self.seed, epoch=self.epoch, shuffle=self.shuffle)
            # Counts are not needed (every record is wanted); each object's units are found when it is reached.
            batches = self._read((unit, [(0, sys.maxsize)]) for i in objects for unit in self._lone_units(i))
            progress = _Progress((), 1, 1, 0, 0)
            generation = 0
            self.dropped = self.padded = 0
        else:
            units = self.units()
            shuffled = epoch_order(len(units), seed=self.seed, epoch=self.epoch, shuffle=self.shuffle)
            ordered = [units[u] for u in shuffled]
            counts = [unit.records for unit in ordered]
            share = plan(
                sum(counts), self._saved, world=self.world_size, workers=workers, consumer=me,
                partition=self.partition, order=order,
            )
            progress = _Progress(share.past, self.world_size, workers, me, share.start)
            generation = share.generation
            self.dropped, self.padded = share.dropped, share.padded
            if share.dropped and me == 0:
                get_logger("pixel.loader").info(
                    "remainder dropped", dataset=self.name, epoch=self.epoch, records=share.dropped,
                    world_size=self.world_size,
                )
            # Blocks wholly yielded before a resume are not read at all.
            skip = share.start if not block else share.start // block * block
            batches = self._slots(ordered, pieces(counts, share.slots.between(skip, len(share))))
        self._live = progress
        try:
            # Closed at once when the iteration stops early (take, break): the object opened ahead releases
            # its cache lock now, not whenever the collector gets to the reader.
            with contextlib.closing(batches):
                # Batches (a span's or a small object's slots, as a list) are flattened in C: a record resumes
                # no generator of pixel's on its way out of an unshuffled read (see _read).
                slots = itertools.chain.from_iterable(batches)
                # Decoded here, not in a generator of its own: one step less a record (see _ordered).
                handed = self._ordered(slots, progress.taken, order, generation, me) if order.block else slots
                loads, malformed = orjson.loads, orjson.JSONDecodeError
                for slot in handed:
                    # _decode's first step in line: a call a record cost a warm pass over shards ~3% of its time.
                    if type(payload := slot[2]) is bytes:
                        try:
                            record = loads(payload)
                        except malformed:
                            pass
                        else:
                            if type(record) is dict:
                                progress.taken += 1
                                yield record
                                continue
                    decoded = self._decode(slot)
                    progress.taken += 1
                    if decoded is not None:
                        yield decoded
        except BaseException:
            # Stopped early or failed: what it downloaded and verified is made durable and unlocked before the
            # caller goes on (another reader of the object, the next pass, a sibling dataset, a retry after the
            # error, finds it cached instead of waiting on a lock), and no part file of it is left meanwhile.
            if self.cache is not None:
                with contextlib.suppress(Exception):  # a failure to settle is logged; the first error stands
                    self.cache.settle()
            raise
        # Done: state_dict() shows the whole share yielded until the next iteration, a new pass, begins.
        self._saved = []
        self._last_span = None
        if self.cache is not None:
            self.cache.settle()  # what this pass downloaded is in the cache once it has ended

    @staticmethod
    def _ordered(slots: Iterator[_Slot], taken: int, order: Order, generation: int, me: int) -> Iterator[_Slot]:
        """`slots` (which start at the block the `taken`-th slot is in) in block order, from the `taken`-th on.

        Slots, not records: the caller decodes and counts each as it yields it, so a state saved between two
        records counts exactly the slots handed out. Passing records through a generator of their own as well
        cost a warm pass over shards a step a record."""
        index, resume = divmod(taken, order.block)
        while buffered := list[_Slot | None](itertools.islice(slots, order.block)):
            for place, i in enumerate(order.permutation(generation, me, index, len(buffered))):
                if place < resume:
                    continue  # yielded before the state this run resumed from was saved
                held = buffered[i]
                buffered[i] = None  # handed-out lines are not kept: memory stays one block of lines
                assert held is not None
                yield held
            index, resume = index + 1, 0

    def _decode(self, slot: _Slot) -> dict[str, Any] | None:
        """The record, or None when it is malformed and on_error is "skip" (counted, logged)."""
        obj, number, payload = slot
        if type(payload) is bytes:
            # A plain line (marked_lines found no long digit run in it) that orjson reads as an object is the
            # record: one call a record where decode_marked's checks cost a warm pass about as much as orjson.
            # Anything else goes the whole way below, errors and all.
            try:  # not contextlib.suppress: three calls a record
                record = orjson.loads(payload)
            except orjson.JSONDecodeError:
                pass
            else:
                if type(record) is dict:
                    return record
        try:
            if obj.fmt is RecordFormat.JSON:
                return check_item(payload, key=obj.key, number=number)
            return decode_marked(cast(Line, payload), key=obj.key, number=number)
        except DatasetFormatError as exc:
            if self.on_error == "raise":
                raise
            self.skipped += 1
            get_logger("pixel.loader").warning("record skipped", dataset=self.name, error=str(exc))
            return None

    def _slots(
        self, units: Sequence[Unit], wanted: Sequence[tuple[int, int, int]]
    ) -> Generator[Iterable[_Slot]]:
        """The undecoded records of `wanted` (unit, first, stop) ranges in batches (_read), in that order, each
        unit read once for a run of ascending ranges in it (contiguous spans of an object by one ranged GET: _Runs)."""

        def reads() -> Iterator[tuple[Unit, list[tuple[int, int]]]]:
            i = 0
            while i < len(wanted):
                u, j = wanted[i][0], i + 1
                while j < len(wanted) and wanted[j][0] == u and wanted[j][1] >= wanted[j - 1][2]:
                    j += 1
                yield units[u], [(a, b) for _, a, b in wanted[i:j]]
                i = j

        return self._read(reads(), run_stops([units[u] for u, _, _ in wanted], self.objects))

    def _read(
        self, reads: Iterator[tuple[Unit, list[tuple[int, int]]]], stops: Mapping[_Where, int] | None = None
    ) -> Generator[Iterable[_Slot]]:
        """The undecoded records of each (unit, ascending ranges) of `reads`, in batches: a span's, or a whole
        small object's, as one list, else the slots of an object streamed; the next unit is fetched (a span) or
        opened (a small object) on a helper thread while the current one is read. Spans in `stops` (run_stops)
        are read by one ranged GET a run.

        Batches, not slots: the caller flattens them with itertools.chain, so a record passes through no
        generator of this class (a cold lone read of a big object passed five: _split, _span_slots, _streamed,
        _indexed_slots and this one, about a tenth of its decoding thread's CPU with the tuple each made). A batch
        is used up before the next is asked for, so this generator is still inside the unit's `with` while its
        batch is read, and closing it (an early stop, a failure raised from a batch) releases the unit."""
        runs = _Runs(stops or {}, self._open_range)
        # `runs` is closed last: the span a helper is fetching from it is waited for first.
        with runs, _OpenAhead(self._open) as opener, _SpanAhead(lambda o, s: self._fetch_span(o, s, runs)) as spans:
            numbered = zip(itertools.count(), reads)
            coming: collections.deque[tuple[int, tuple[Unit, list[tuple[int, int]]]]] = collections.deque()
            considered = 0  # reads numbered below this were looked at for opening ahead

            def look(n: int) -> None:
                while len(coming) < n and (item := next(numbered, None)) is not None:
                    coming.append(item)

            look(1)
            while coming:
                unit, ranges = coming.popleft()[1]
                look(1)
                following = coming[0][1] if coming else None
                obj = self.objects[unit.obj]
                if unit.span is not None:
                    data = self._span_bytes(obj, unit.span, spans, runs)
                    if following is not None and following[0].span is not None:
                        after = following[0].span
                        if after.md5 != unit.span.md5:  # the same span again (it straddles blocks) is kept
                            spans.ahead((self.objects[following[0].obj], after))
                    yield self._span_slots(obj, unit.span, data, ranges)
                elif unit.index is not None:
                    yield from self._indexed_slots(obj, unit.index)
                else:
                    source = opener.open(obj)
                    if following is not None and following[0].span is not None:
                        spans.ahead((self.objects[following[0].obj], following[0].span))
                    look(OPEN_AHEAD)
                    for number, (next_unit, _) in coming:
                        if next_unit.span is not None or next_unit.index is not None:
                            break  # opened ahead only in a run of whole objects
                        if number < considered:
                            continue
                        considered = number + 1
                        after_obj = self.objects[next_unit.obj]
                        if (after_obj.size is not None and after_obj.size <= OPEN_AHEAD_MAX
                                and not self._cached(after_obj)):
                            opener.ahead(after_obj)
                    stack, stream = source
                    with stack:
                        whole = self._whole(obj, stream)
                        # A list when all of it: no step a record.
                        yield self._object_slots(obj, stream, ranges) if whole is None else self._pick(whole, ranges)

    def _cached(self, obj: SourceObject) -> bool:
        """A copy of the object is in the cache: opening it is local work, too little to hand to a helper thread.
        Handed over, each object of a warm pass over 1 MiB shards waited ~2 ms for the GIL back."""
        return obj.md5 is not None and self.cache is not None and self.cache.has(obj.md5)

    @staticmethod
    def _pick(slots: Iterable[S], ranges: Sequence[tuple[int, int]]) -> Iterable[S]:
        """The slots whose place among `slots` is in one of the ascending `ranges`; stops after the last."""
        if len(ranges) == 1 and ranges[0] == (0, sys.maxsize):
            return slots  # all of them (a lone reader's): no step a record to count places
        return StreamingDataset._picked(slots, ranges)

    @staticmethod
    def _picked(slots: Iterable[S], ranges: Sequence[tuple[int, int]]) -> Iterator[S]:
        wanted = iter(ranges)
        a, b = next(wanted)
        for place, slot in enumerate(slots):
            while place >= b:
                following = next(wanted, None)
                if following is None:
                    return
                a, b = following
            if place >= a:
                yield slot

    @staticmethod
    def _whole(obj: SourceObject, stream: BinaryIO) -> list[tuple[SourceObject, int, Line]] | None:
        """Every slot of a small JSON Lines object (no larger than a span) at once: its bytes in one read, split
        in one go (formats.whole_lines). A warm pass over 1 MiB shards read each cached copy in 1 MiB pieces,
        joined the line cut between two pieces, and passed each line through two generators. Else None: the
        object is streamed (_object_slots). The bytes are the verified stream's, as any reader's."""
        if obj.fmt is not RecordFormat.JSONL or obj.size is None or obj.size > SPAN_BYTES:
            return None
        data = read_exactly(stream, obj.size + 1)  # the one extra byte asked for shows the end was reached
        if len(data) > obj.size:
            data += read_all(stream)  # longer than resolved: the verified stream's bytes are still the record
        return whole_lines(data, obj)

    def _object_slots(self, obj: SourceObject, stream: BinaryIO, ranges: Sequence[tuple[int, int]]) -> Iterator[_Slot]:
        for number, payload in self._pick(iter_slots(stream, key=obj.key, fmt=obj.fmt), ranges):
            yield obj, number, payload
        if obj.size is not None and obj.size <= SPAN_BYTES:
            # Past our last record of a small object: read it to its end all the same, so the cache keeps
            # a verified copy (another worker's or the next epoch's read of it is then local).
            while stream.read(CHUNK):
                pass

    def _span_slots(
        self, obj: SourceObject, span: Span, data: bytes, ranges: Sequence[tuple[int, int]]
    ) -> Iterable[_Slot]:
        # The span split at once into a list: one sampled scan clears most spans of digit runs, and a reader that
        # wants all of it (a lone one) gets the list itself.
        return self._pick(whole_lines(data, obj, first=span.lines + 1), ranges)

    def _indexed_slots(self, obj: SourceObject, index: RecordIndex) -> Iterator[Iterable[_Slot]]:
        """A lone reader's indexed object, every record, a span's slots at a time (see _read): one GET when it is
        not cached (written into the cache as it comes), else span by span from the cached copy; each span's
        records only once its bytes match the index's digest for it."""
        assert obj.md5 is not None
        label = f"{obj.store}:{obj.key}"
        cache = self.cache if self.cache is not None and self.cache.fits(obj.size) else None
        online = not self.offline and self._reads.down_since is None
        if online and (cache is None or not cache.has(obj.md5)):
            # Every byte _streamed writes has matched its span's SHA-256 first, and the spans tile the bytes of
            # obj.md5 (an index is only kept or taken for that md5): hashing the whole again would cost a core.
            vouched = index.md5 == obj.md5 and index.size == obj.size
            filling = cache.fill(obj.md5, index.size, label=label, vouched=vouched) if cache is not None else None
            if cache is None or filling is not None:
                yield from self._streamed(obj, index, filling)
                return
        elif online:
            # A cached copy: served only while S3 still holds that version (a transient failure to ask is no
            # reason to refuse bytes verified against the resolved md5).
            with contextlib.suppress(TransientStoreError):
                self._current(obj, self.stores[obj.store], label)
        # Cached (or being downloaded by another process, or S3 not to be used): span by span, as a rank reads.
        for span in index.spans:
            data = self._fetch_span(obj, span)
            self._last_span = (span.md5, data)
            yield self._span_slots(obj, span, data, [(0, sys.maxsize)])

    def _streamed(self, obj: SourceObject, index: RecordIndex, filling: Filling | None) -> Iterator[Iterable[_Slot]]:
        """The object by one GET pinned to its version, read on a helper thread as it arrives, and checked on a
        second one, each span against its SHA-256, then handed over (two at most in hand): the download, the hashing
        and the cache write overlap each other and the decoding (downloading and hashing one after the other on
        one thread held a cold read to the sum of both). A span whose bytes do not match ends the read
        (BadDigest) before any of its records.

        A span crosses from thread to thread whole, read off the socket in one call and hashed in one: every
        hand-over costs the helper the GIL back from the decoding thread (up to a switch interval, 5 ms), and
        1 MiB pieces made four times as many of them (see docs/design.md, "The cold read of one big object")."""
        store = self.stores[obj.store]
        label = f"{obj.store}:{obj.key}"
        # Spans as they arrive, a failure, or None at the end; two ahead of the hashing at most.
        arrived: queue.Queue[tuple[Span, bytes] | BaseException | None] = queue.Queue(maxsize=2)
        handed: queue.Queue[tuple[Span, bytes] | BaseException | None] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def put(into: queue.Queue[Any], item: object) -> bool:
            while not stop.is_set():
                with contextlib.suppress(queue.Full):
                    into.put(item, timeout=0.05)
                    return True
            return False  # the reader stopped: nothing more is wanted

        def download() -> None:
            try:
                with self._versioned(obj, store, lambda if_match: store.open(obj.key, if_match=if_match)) as stream:
                    for span in index.spans:
                        if not put(arrived, (span, read_exactly(stream, span.stop - span.start))):
                            return
                    if stream.read(1):
                        raise PermanentStoreError(f"{label}: longer than its index's {index.size} bytes",
                                                  code="BadDigest", key=obj.key)
                put(arrived, None)
            except BaseException as exc:
                put(arrived, exc)

        def check() -> None:
            try:
                while True:
                    item = None
                    while not stop.is_set():
                        with contextlib.suppress(queue.Empty):
                            item = arrived.get(timeout=0.05)
                            break
                    else:
                        return
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    span, data = item
                    if (problem := span_problem(span, data)) is not None:
                        raise PermanentStoreError(f"{label} bytes {span.start}-{span.stop - 1}: {problem}; none of "
                                                  "them was used", code="BadDigest", key=obj.key)
                    if filling is not None:
                        filling.write(data)
                    if not put(handed, (span, data)):
                        return
                if filling is not None:
                    filling.done()
                put(handed, None)
            except BaseException as exc:
                put(handed, exc)
            finally:
                if filling is not None:
                    filling.abort()  # not done (stopped, failed): no part file left, the lock free

        threads = [threading.Thread(target=download, name="pixel-loader-stream", daemon=True),
                   threading.Thread(target=check, name="pixel-loader-check", daemon=True)]
        for thread in threads:
            thread.start()
        try:
            while (item := handed.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                span, data = item
                yield self._span_slots(obj, span, data, [(0, sys.maxsize)])
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    def _span_bytes(self, obj: SourceObject, span: Span, spans: _SpanAhead, runs: _Runs) -> bytes:
        """A span's bytes, verified before any is used: from the cached whole object, the cached span, or S3.

        The last span read is kept: one that straddles two shuffle blocks is read for both, back to back."""
        if self._last_span is not None and self._last_span[0] == span.md5:
            return self._last_span[1]
        data = spans.bytes_of(obj, span)
        if data is None:
            data = self._fetch_span(obj, span, runs)
        self._last_span = (span.md5, data)
        return data

    def _fetch_span(self, obj: SourceObject, span: Span, runs: _Runs | None = None) -> bytes:
        size = span.stop - span.start
        label = f"{obj.store}:{obj.key} bytes {span.start}-{span.stop - 1}"
        cache = self.cache
        if cache is not None and obj.md5 is not None:
            # The whole object's verified copy serves any span of it, with or without S3.
            whole = cache.use(obj.md5, obj.size, label=f"{obj.store}:{obj.key}")
            if whole is not None:
                with whole:
                    whole.seek(span.start)
                    return read_all(cast(BinaryIO, _Window(whole, size)))
        # Offline (or S3 not answering), only the span's own verified copy serves: else NotCachedOffline.
        return self._reads.span(obj.key, span.md5, size, cache, lambda: self._download_span(obj, span, label, runs),
                                label=label)

    def _download_span(self, obj: SourceObject, span: Span, label: str, runs: _Runs | None = None) -> bytes:
        size = span.stop - span.start
        cache = self.cache

        def fetch() -> contextlib.AbstractContextManager[BinaryIO]:
            # Only when the span must be downloaded: a cached one costs no request. Checked as its own GET is.
            ran = runs.read(obj, span) if runs is not None else None
            if ran is None:
                return self._open_range(obj, span.start, span.stop)
            return contextlib.nullcontext(cast(BinaryIO, io.BytesIO(ran)))

        filling = None
        if cache is not None and cache.fits(size) and (filling := cache.fill(span.md5, size, label=label,
                                                                            vouched=True)) is None:
            # Cached, or being downloaded by another process: that copy, checked on its way in by the span's
            # SHA-256 (below, in whichever process filled it) or by the cache's md5, and by its identity on a hit.
            with cache.open(span.md5, size, fetch, label=label) as stream:
                return read_all(stream)
        try:
            with fetch() as stream:
                data = read_all(stream)
            if (problem := span_problem(span, data)) is not None:
                raise PermanentStoreError(f"{label}: {problem}; none of them was used", code="BadDigest",
                                          key=obj.key)
            if filling is not None:
                # Kept under the span's md5, vouched for by its SHA-256 in the same index: not hashed again.
                filling.write(data)
                filling.done()
        finally:
            if filling is not None:
                filling.abort()  # not done (failed): no part file left, the lock free
        return data

    @contextlib.contextmanager
    def _open_range(self, obj: SourceObject, start: int, stop: int) -> Iterator[BinaryIO]:
        """Bytes [start, stop) of the object, of the version the dataset was resolved to."""
        store = self.stores[obj.store]

        @contextlib.contextmanager
        def ranged(if_match: str | None) -> Iterator[BinaryIO]:
            if isinstance(store, ReadsRanges):
                with store.open_range(obj.key, start, stop, if_match=if_match) as stream:
                    yield stream
                return
            with store.open(obj.key, if_match=if_match) as stream:
                if stream.seekable():
                    stream.seek(start)
                else:
                    read_all(cast(BinaryIO, _Window(stream, start)))
                yield cast(BinaryIO, _Window(stream, stop - start))

        with self._versioned(obj, store, ranged) as stream:
            yield stream

    @contextlib.contextmanager
    def _versioned(self, obj: SourceObject, store: Store, open_: _OpenVersion) -> Iterator[BinaryIO]:
        """`open_(if_match)` pinned to the resolved version: by the ETag it is known by (`_pin`), else the ETag
        of a HEAD, which is then remembered: each span of a big multipart object paid a 412 and a HEAD."""
        if obj.md5 is not None:
            stack = contextlib.ExitStack()
            try:
                stream = stack.enter_context(open_(self._pin(obj)))
            except ObjectChanged:
                stack.close()  # an ETag that is no md5 (multipart), or changed: the HEAD tells which
                self._versions.pop((obj.store, obj.key), None)
            else:
                with stack:
                    yield stream
                return
        entry = self._current(obj, store, f"{obj.store}:{obj.key}")
        if obj.md5 is not None and entry.etag is not None:
            self._versions[(obj.store, obj.key)] = entry.etag  # a HEAD showed it holds the resolved md5
        with open_(entry.etag) as stream:
            yield stream

    def _pin(self, obj: SourceObject) -> str | None:
        """The ETag that asks the server for exactly the resolved version: one a HEAD of this dataset showed
        holding the md5, else the one resolution saw with that md5 (a multipart object's ETag is no md5: pinned
        by the md5, each read of it paid a 412 and a HEAD first), else the md5 itself (a single-part object's
        ETag). Whatever comes is still checked against the md5 (or the span's); a wrong ETag costs only a 412
        and a HEAD."""
        return self._versions.get((obj.store, obj.key), obj.etag or obj.md5)

    def _open(self, obj: SourceObject) -> contextlib.AbstractContextManager[BinaryIO]:
        """The object's verified bytes: from S3 (or the cache, checked against S3), else offline from the cache."""
        return self._reads.open(obj, self.cache, lambda: self._open_online(obj))

    @contextlib.contextmanager
    def _open_online(self, obj: SourceObject) -> Iterator[BinaryIO]:
        """The object's bytes, never stale: the cached copy only after a HEAD shows its md5 unchanged."""
        store = self.stores[obj.store]
        label = f"{obj.store}:{obj.key}"
        cache = self.cache if self.cache is not None and self.cache.fits(obj.size) else None
        if obj.md5 is not None and (cache is None or not cache.has(obj.md5)):
            # Not cached: skip the HEAD and GET pinned to the md5. A single-part object's ETag is its md5, so
            # the server sends exactly those bytes or 412 (changed, or an ETag that is no md5: then look it up).
            md5, pin = obj.md5, self._pin(obj)

            def pinned() -> contextlib.AbstractContextManager[BinaryIO]:
                return store.open(obj.key, if_match=pin)

            stack = contextlib.ExitStack()
            try:
                stream = stack.enter_context(
                    cache.open(md5, obj.size, pinned, label=label) if cache is not None
                    else verified_read(pinned, md5=md5, size=obj.size, label=label, directory=self._spool())
                )
            except ObjectChanged:
                stack.close()
                self._versions.pop((obj.store, obj.key), None)
            else:
                with stack:
                    yield stream
                return
        with self._open_checked(obj, store, label) as stream:
            yield stream

    def _open_checked(self, obj: SourceObject, store: Store, label: str) -> contextlib.AbstractContextManager[BinaryIO]:
        entry = self._current(obj, store, label)
        etag = entry.etag
        if obj.md5 is not None and etag is not None:
            self._versions[(obj.store, obj.key)] = etag

        def fetch() -> contextlib.AbstractContextManager[BinaryIO]:
            return store.open(obj.key, if_match=etag)

        # What the bytes must be: the pinned md5 when there is one (an ETag that is no md5 proves nothing).
        md5 = obj.md5 or entry.md5
        if self.cache is None or md5 is None or not self.cache.fits(entry.size):
            return verified_read(fetch, md5=md5, size=entry.size, label=label, directory=self._spool())
        return self.cache.open(md5, entry.size, fetch, label=label)

    def _spool(self) -> Path | None:
        """Where an uncached object is held while it is verified: beside the cache, else the temp directory."""
        return self.cache.root / "spool" if self.cache is not None else None

    def _current(self, obj: SourceObject, store: Store, label: str) -> Entry:
        """The object as it is now (this pass's listing of its prefix, else a HEAD: loader/fresh.py):
        DatasetChanged when it is gone or holds other bytes."""
        entry = self._listings.current(obj, store)
        if entry is None:
            raise DatasetChanged(f"{label}: the object is gone since the dataset was resolved", key=obj.key)
        if obj.md5 is not None and entry.md5 is not None and entry.md5 != obj.md5:
            raise DatasetChanged(
                f"{label}: the object changed since the dataset was resolved (md5 {obj.md5} -> {entry.md5}); "
                "load the dataset again",
                key=obj.key,
            )
        if obj.size is not None and entry.size != obj.size:
            raise DatasetChanged(
                f"{label}: the object changed since the dataset was resolved (size {obj.size} -> {entry.size}); "
                "load the dataset again",
                key=obj.key,
            )
        return entry
