"""Records of an ordered list of objects, streamed: cached by md5, shared out by rank and worker, resumable.

`StreamingDataset(objects, stores)` works on any list of `SourceObject`s (a
registry dataset, a prefix of shards, the final dataset's manifest). Iterating
it yields dicts while each object downloads; memory is a chunk and a record.

Who reads what is decided in reconciler/loader/sharding.py: the epoch is one
sequence of record slots, consumer c of C (C = world_size x num_workers) takes
the slots s with s % C == c. Every consumer therefore reads every object (the
cache makes that one download per machine) and parses only its own records: a
JSON Lines record it does not own is a line split, not a parse.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Literal

from reconciler.loader import state as loader_state
from reconciler.loader.cache import ObjectCache
from reconciler.loader.formats import (
    DatasetFormatError,
    RecordFormat,
    check_item,
    decode_line,
    iter_slots,
)
from reconciler.loader.offline import OfflineReads
from reconciler.loader.pipeline import PipelineMethods
from reconciler.loader.resolve import SourceObject
from reconciler.loader.sharding import (
    STATE_VERSION,
    Generation,
    Slicer,
    continue_from,
    epoch_order,
    merge_generations,
)
from reconciler.loader.verify import verified_read
from reconciler.logs import get_logger
from reconciler.stores.base import ObjectChanged, Store, StoreError

# While an object up to this size is read, the next one is opened (its GET sent, its cache lock taken) on a
# helper thread: a cold read of 1 MiB shards spent half its time waiting for each response to begin. A larger
# object's read outlasts any round trip, and would keep the next connection idle long enough to time out.
OPEN_AHEAD_MAX = 64 * 1024 * 1024

_Opened = tuple[contextlib.ExitStack, BinaryIO]


class _OpenAhead:
    """Objects opened in the reader's order, the next one on a helper thread while the current one is read."""

    def __init__(self, open_: Callable[[SourceObject], contextlib.AbstractContextManager[BinaryIO]]) -> None:
        self._open = open_
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: tuple[SourceObject, Future[_Opened]] | None = None

    def _enter(self, obj: SourceObject) -> _Opened:
        stack = contextlib.ExitStack()
        try:
            stream = stack.enter_context(self._open(obj))
        except BaseException:
            stack.close()
            raise
        return stack, stream

    def open(self, obj: SourceObject) -> _Opened:
        """`obj` opened: the one opened ahead if it is that object (its failure, if it failed, raised now)."""
        if self._ahead is not None and self._ahead[0] is obj:
            future, self._ahead = self._ahead[1], None
            return future.result()
        self._discard()
        return self._enter(obj)

    def ahead(self, obj: SourceObject) -> None:
        self._discard()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixel-loader-open")
        self._ahead = (obj, self._pool.submit(self._enter, obj))

    def _discard(self) -> None:
        """Close what was opened ahead and not read (the iteration stopped): its cache lock is released."""
        if self._ahead is None:
            return
        future, self._ahead = self._ahead[1], None
        try:
            stack, _ = future.result()
        except Exception:  # it was never going to be read: its failure is nobody's
            return
        stack.close()

    def __enter__(self) -> _OpenAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._discard()
        if self._pool is not None:
            self._pool.shutdown()

OnError = Literal["raise", "skip"]
WorkerInfo = Callable[[], Any]  # returns an object with .id and .num_workers, or None outside a worker


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
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f'on_error must be "raise" or "skip", got {on_error!r}')
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
        self.epoch = 0
        self.skipped = 0
        self._saved: list[Generation] = []  # progress to resume from when the next iteration starts
        self._live: Slicer | None = None

    # --- epochs and state ---------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Another epoch: another order when shuffling. The progress of a loaded state is kept for its own epoch."""
        if epoch != self.epoch:
            self.epoch = epoch
            self._saved = []
            self._live = None

    @property
    def digest(self) -> str:
        return loader_state.digest(self.objects)

    def state_dict(self) -> dict[str, Any]:
        """Exactly the records yielded so far (by this consumer, in this process), as plain JSON-able data."""
        live = self._live
        if live is None:
            # Not started: nothing consumed yet, but say by whom, so merged states of all consumers are complete.
            me, consumers = self.consumer()
            try:
                live = continue_from(self._saved, consumers, me)
            except ValueError:
                live = None
        generations = live.generations() if live is not None else self._saved
        return {
            "version": STATE_VERSION,
            "dataset": self.name,
            "objects": self.digest,
            "epoch": self.epoch,
            "seed": self.seed,
            "shuffle": self.shuffle,
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
        if (state.get("seed"), bool(state.get("shuffle"))) != (self.seed, self.shuffle):
            raise ValueError(
                f"the state was saved with seed={state.get('seed')} shuffle={state.get('shuffle')}, "
                f"this dataset has seed={self.seed} shuffle={self.shuffle}"
            )
        self.epoch = epoch
        self._saved = generations
        self._live = None

    @staticmethod
    def merge_states(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """One state from those of every rank and worker of one run (e.g. gathered with all_gather_object)."""
        if not states:
            raise ValueError("no states to merge")
        first = states[0]
        for state in states:
            for field in ("version", "objects", "epoch", "seed", "shuffle"):
                if state.get(field) != first.get(field):
                    raise ValueError(f"the states to merge differ in {field}")
        merged = merge_generations([loader_state.check(s)[1] for s in states])
        return {**first, "generations": [g.to_json() for g in merged]}

    # --- iteration -----------------------------------------------------------------------------------------

    def consumer(self) -> tuple[int, int]:
        """(this consumer's index, number of consumers): rank x num_workers + worker id."""
        info = self.worker_info()
        worker, workers = (0, 1) if info is None else (int(info.id), int(info.num_workers))
        return self.rank * workers + worker, self.world_size * workers

    def __iter__(self) -> Iterator[dict[str, Any]]:
        me, consumers = self.consumer()
        slicer = continue_from(self._saved, consumers, me)
        self._live = slicer
        self._reads.new_pass()
        order = list(epoch_order(len(self.objects), seed=self.seed, epoch=self.epoch, shuffle=self.shuffle))
        with _OpenAhead(self._open) as opener:
            for position, index in enumerate(order):
                obj = self.objects[index]
                source = opener.open(obj)
                if position + 1 < len(order) and obj.size is not None and obj.size <= OPEN_AHEAD_MAX:
                    opener.ahead(self.objects[order[position + 1]])
                yield from self._records(obj, source, slicer)
        if (overclaim := slicer.overclaimed()) is not None:
            raise ValueError(f"{self.name}: the loaded state is not of this dataset: {overclaim}")
        # Done: state_dict() shows the whole epoch consumed until the next iteration, a new pass, begins.
        self._saved = []
        if self.cache is not None:
            self.cache.settle()  # what this pass downloaded is in the cache once it has ended

    def _records(self, obj: SourceObject, source: _Opened, slicer: Slicer) -> Iterator[dict[str, Any]]:
        take = slicer.take
        stack, stream = source
        with stack:
            json_items = obj.fmt is RecordFormat.JSON
            for number, payload in iter_slots(stream, key=obj.key, fmt=obj.fmt):
                if slicer.trivial:
                    slicer.taken += 1
                elif not take():
                    continue
                try:
                    if json_items:
                        record = check_item(payload, key=obj.key, number=number)
                    else:
                        assert isinstance(payload, bytes)
                        record = decode_line(payload, key=obj.key, number=number)
                except DatasetFormatError as exc:
                    if self.on_error == "raise":
                        raise
                    self.skipped += 1
                    get_logger("pixel.loader").warning("record skipped", dataset=self.name, error=str(exc))
                    continue
                yield record

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
            md5 = obj.md5

            def pinned() -> contextlib.AbstractContextManager[BinaryIO]:
                return store.open(obj.key, if_match=md5)

            stack = contextlib.ExitStack()
            try:
                stream = stack.enter_context(
                    cache.open(md5, obj.size, pinned, label=label) if cache is not None
                    else verified_read(pinned, md5=md5, size=obj.size, label=label, directory=self._spool())
                )
            except ObjectChanged:
                stack.close()
            else:
                with stack:
                    yield stream
                return
        with self._open_checked(obj, store, label) as stream:
            yield stream

    def _open_checked(self, obj: SourceObject, store: Store, label: str) -> contextlib.AbstractContextManager[BinaryIO]:
        entry = store.stat(obj.key)
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
        etag = entry.etag

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
