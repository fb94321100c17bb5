"""Transformations of a resumable record stream: map, filter, take, skip, batch, and a seeded weighted interleave.

A stage wraps one or more sources: anything with `__iter__`, `state_dict()`,
`load_state_dict()` and `set_epoch()` (a `StreamingDataset`, or another stage).
Its state is its sources' states plus the few counters the stage itself needs:
none for map, filter and batch, the items passed for take and skip, the draw
count and the ended sources for interleave. No stage holds an item across one
of its yields (a batch is handed on whole before the next is begun), so when
the consumer asks for the state between two items, every source has consumed
exactly what the items yielded so far came from, and a resume from that state
continues the uninterrupted output exactly.

Like a `StreamingDataset`, a stage iterated again starts from the last loaded
state (or the beginning); `set_epoch` with another epoch starts that epoch from
the beginning, with the epoch of a loaded state it keeps that state.

Each DataLoader worker iterates its own copy of the pipeline, over its own
share of the records: take, skip, batch and interleave count per consumer
(rank x worker), not over the whole dataset. Without filter a consumer's
output count is a function of its sources' counts (and the seed and epoch), so
consumers with equal source counts stay equal; filter's count depends on the
records and carries no such guarantee (README, "Pipelines").
"""

from __future__ import annotations

import abc
import bisect
import contextlib
import itertools
import math
import numbers
import operator
import pickle
import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol, TypeVar, cast, runtime_checkable

PIPELINE_STATE_VERSION = 1

Stopping = Literal["first_exhausted", "all_exhausted"]


@runtime_checkable
class Source(Protocol):
    """What a stage reads from: an iterable whose progress can be saved, restored and moved to another epoch."""

    def __iter__(self) -> Iterator[Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

    def set_epoch(self, epoch: int) -> None: ...


class PipelineMethods:
    """`.map/.filter/.take/.skip/.batch` for a source (mixed into `StreamingDataset` and every stage)."""

    def map(self, fn: Callable[[Any], Any]) -> Map:
        """Each item replaced by `fn(item)`."""
        return _flavoured(Map)(_as_source(self), fn)

    def filter(self, predicate: Callable[[Any], Any]) -> Filter:
        """Only the items `predicate` is true for (how many depends on the records: ranks may differ)."""
        return _flavoured(Filter)(_as_source(self), predicate)

    def take(self, n: int) -> Take:
        """The first `n` items (of this consumer's share), then stop without reading further."""
        return _flavoured(Take)(_as_source(self), n)

    def skip(self, n: int) -> Skip:
        """All but the first `n` items (of this consumer's share)."""
        return _flavoured(Skip)(_as_source(self), n)

    def batch(self, size: int, *, drop_last: bool = False) -> Batch:
        """Lists of `size` items; the last shorter one is yielded, or dropped with `drop_last=True`."""
        return _flavoured(Batch)(_as_source(self), size, drop_last=drop_last)


def _as_source(obj: object) -> Source:
    if not isinstance(obj, Source):
        raise TypeError(
            f"{type(obj).__name__} is no pipeline source: it needs __iter__, state_dict, load_state_dict and set_epoch"
        )
    return obj


@contextlib.contextmanager
def _iterating(source: Source) -> Iterator[Iterator[Any]]:
    """The source's iterator, closed when the stage stops early: a dataset then releases its open objects."""
    it = iter(source)
    try:
        yield it
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _leaves(source: object) -> Iterator[object]:
    """The sources at the bottom of a pipeline (every object that is no stage)."""
    if isinstance(source, Stage):
        for upstream in source.sources:
            yield from _leaves(upstream)
    else:
        yield source


def _restore(cls: type[Stage], state: dict[str, Any]) -> Stage:
    stage = cls.__new__(cls)
    stage.__dict__.update(state)
    return stage


class Stage(PipelineMethods, abc.ABC):
    """One step of a pipeline: its sources' progress plus its own counters (`_fresh()` at the start of a pass)."""

    kind: ClassVar[str]

    def __init__(self, sources: Sequence[Source]) -> None:
        ids = [id(leaf) for leaf in _leaves_of(sources)]
        if len(ids) != len(set(ids)):
            raise ValueError(
                "the same dataset appears twice in one pipeline: its one position cannot follow two branches "
                "(load it twice instead)"
            )
        self.sources = tuple(sources)
        self.epoch = 0
        self._saved: dict[str, Any] = self._fresh()
        self._live: dict[str, Any] | None = None

    # --- what each stage defines --------------------------------------------------------------------------

    def _fresh(self) -> dict[str, Any]:
        return {}

    def _params(self) -> dict[str, Any]:
        """What a saved state must have been taken with: a resume into another pipeline cannot be exact."""
        return {}

    @abc.abstractmethod
    def _run(self, own: dict[str, Any]) -> Iterator[Any]:
        """The stage's items, keeping `own` (its counters) current before each yield."""

    # --- iteration and state ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        own = _copy(self._saved)
        self._live = own
        yield from self._run(own)
        self._saved = self._fresh()  # a pass ended: the next iteration is a new one

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self._saved = self._fresh()
            self._live = None
        for source in self.sources:
            source.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """The sources' states and this stage's counters, as plain JSON-able data."""
        own = self._live if self._live is not None else self._saved
        return {
            "version": PIPELINE_STATE_VERSION,
            "stage": self.kind,
            "params": self._params(),
            "epoch": self.epoch,
            "own": _copy(own),
            "sources": [source.state_dict() for source in self.sources],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume: the next iteration continues where `state` was taken."""
        # Every stage's part is checked before any is loaded: a refused state leaves the whole pipeline as it was.
        self._check(state)
        self._load(state)

    def _load(self, state: Mapping[str, Any]) -> None:
        for source, saved in zip(self.sources, state["sources"], strict=True):
            if isinstance(source, Stage):
                source._load(saved)
            else:
                source.load_state_dict(saved)
        self.epoch = int(state["epoch"])
        self._saved = _copy(dict(state["own"]))
        self._live = None

    def _check(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != PIPELINE_STATE_VERSION or "stage" not in state:
            raise ValueError(f"not a pixel pipeline state (version {state.get('version')!r})")
        if state["stage"] != self.kind or state.get("params") != self._params():
            raise ValueError(
                f"the state was saved by another pipeline ({state['stage']} {state.get('params')}), "
                f"this stage is {self.kind} {self._params()}: an exact resume is impossible"
            )
        sources = state.get("sources", [])
        if len(sources) != len(self.sources):
            raise ValueError(f"the state has {len(sources)} sources, this {self.kind} has {len(self.sources)}")
        for source, saved in zip(self.sources, sources, strict=True):
            if isinstance(source, Stage):
                source._check(saved)

    # --- pickling, for DataLoader workers -----------------------------------------------------------------

    def __reduce__(self) -> tuple[Callable[[type[Stage], dict[str, Any]], Stage], tuple[type[Stage], dict[str, Any]]]:
        # The plain class: a worker only iterates, and a torch flavour (a class made at run time) has no import path.
        plain = cast(type[Stage], getattr(type(self), "_plain", type(self)))
        return _restore, (plain, dict(self.__dict__))


def _leaves_of(sources: Sequence[object]) -> Iterator[object]:
    for source in sources:
        yield from _leaves(source)


def _copy(own: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, list) else v for k, v in own.items()}


def _check_picklable(stage: str, fn: Callable[..., Any]) -> None:
    try:
        pickle.dumps(fn)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError(
            f"{stage}({getattr(fn, '__qualname__', fn)!r}): the function cannot be pickled ({exc}); DataLoader "
            "workers started with spawn (the default on macOS and Windows) receive the pipeline pickled, so pass "
            "a function defined at module level (functools.partial of one works), not a lambda or a nested function"
        ) from exc


class _Applying(Stage):
    """A stage that applies a function to each item (map, filter): it must be callable, and picklable when the
    pipeline is sent to a spawned DataLoader worker."""

    def __init__(self, source: Source, fn: Callable[[Any], Any]) -> None:
        if not callable(fn):
            raise TypeError(f"{self.kind} needs a function, got {type(fn).__name__}")
        super().__init__([source])
        self.fn = fn

    def __reduce__(self) -> Any:
        _check_picklable(self.kind, self.fn)
        return super().__reduce__()


class Map(_Applying):
    kind = "map"

    def _run(self, own: dict[str, Any]) -> Iterator[Any]:
        fn = self.fn
        with _iterating(self.sources[0]) as it:
            for item in it:
                yield fn(item)


class Filter(_Applying):
    kind = "filter"

    def _run(self, own: dict[str, Any]) -> Iterator[Any]:
        predicate = self.fn
        with _iterating(self.sources[0]) as it:
            for item in it:
                if predicate(item):
                    yield item


def _count(name: str, n: int, *, least: int = 0) -> int:
    """`n` as an int (numpy integers too), or one clear error: a float or bool count is a mistake, not a count."""
    try:
        value = operator.index(n) if not isinstance(n, bool) else None
    except TypeError:
        value = None
    if value is None or value < least:
        raise ValueError(f"{name} needs an integer >= {least}, got {n!r}")
    return value


class _Counting(Stage):
    """A stage that passes over a count of items (take, skip): its one parameter and its one counter."""

    counter: ClassVar[str]  # the name of its counter in a saved state

    def __init__(self, source: Source, n: int) -> None:
        self.n = _count(self.kind, n)
        super().__init__([source])

    def _fresh(self) -> dict[str, Any]:
        return {self.counter: 0}

    def _params(self) -> dict[str, Any]:
        return {"n": self.n}


class Take(_Counting):
    kind = "take"
    counter = "taken"

    def _run(self, own: dict[str, Any]) -> Iterator[Any]:
        if own["taken"] >= self.n:
            return  # never pull the item after the last: the source's state would count it consumed
        with _iterating(self.sources[0]) as it:
            for item in it:
                own["taken"] += 1
                yield item
                if own["taken"] >= self.n:
                    return


class Skip(_Counting):
    kind = "skip"
    counter = "skipped"

    def _run(self, own: dict[str, Any]) -> Iterator[Any]:
        with _iterating(self.sources[0]) as it:
            for item in it:
                if own["skipped"] < self.n:
                    own["skipped"] += 1
                    continue
                yield item


class Batch(Stage):
    kind = "batch"

    def __init__(self, source: Source, size: int, *, drop_last: bool = False) -> None:
        self.size = _count("batch", size, least=1)
        self.drop_last = bool(drop_last)
        super().__init__([source])

    def _params(self) -> dict[str, Any]:
        return {"size": self.size, "drop_last": self.drop_last}

    def _run(self, own: dict[str, Any]) -> Iterator[Any]:
        size = self.size
        with _iterating(self.sources[0]) as it:
            batch: list[Any] = []
            for item in it:
                batch.append(item)
                if len(batch) == size:
                    out, batch = batch, []
                    yield out
            if batch and not self.drop_last:
                yield batch


# Draws come in blocks from a generator seeded by (seed, epoch, block): draw k is a pure function of k, so the
# RNG position is a count, and a resume re-creates one block instead of hashing every draw (4 us an item).
DRAW_BLOCK = 1024


def _draw_block(seed: int, epoch: int, block: int) -> list[float]:
    # A string seed is hashed with sha512 by random.Random: the same draws in every process and Python run.
    rng = random.Random(f"pixel-interleave:{seed}:{epoch}:{block}")
    return [rng.random() for _ in range(DRAW_BLOCK)]


class Interleave(Stage):
    kind = "interleave"

    def __init__(
        self,
        sources: Sequence[Source],
        weights: Sequence[float] | None = None,
        *,
        seed: int = 0,
        stopping: Stopping = "first_exhausted",
    ) -> None:
        if not sources:
            raise ValueError("interleave needs at least one source")
        for source in sources:
            _as_source(source)
        if weights is None:
            weights = [1.0] * len(sources)
        if len(weights) != len(sources):
            raise ValueError(f"interleave has {len(sources)} sources but {len(weights)} weights")
        if any(
            isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w <= 0 for w in weights
        ):
            raise ValueError(f"interleave weights must be finite numbers > 0, got {list(weights)}")
        if stopping not in ("first_exhausted", "all_exhausted"):
            raise ValueError(f'stopping must be "first_exhausted" or "all_exhausted", got {stopping!r}')
        seed = _count("interleave's seed", seed)
        self.weights = [float(w) for w in weights]
        self.seed = seed
        self.stopping: Stopping = stopping
        super().__init__(sources)

    def _fresh(self) -> dict[str, Any]:
        return {"draws": 0, "ended": [False] * len(self.weights)}

    def _params(self) -> dict[str, Any]:
        return {"weights": self.weights, "seed": self.seed, "stopping": self.stopping}

    def _table(self, ended: list[bool]) -> tuple[list[float], list[int]] | None:
        """The cumulative shares of the sources still drawn from and their indices; None once the mix ends."""
        if all(ended) or (self.stopping == "first_exhausted" and any(ended)):
            return None
        active = [i for i, done in enumerate(ended) if not done]
        bounds = list(itertools.accumulate(self.weights[i] for i in active))
        return [b / bounds[-1] for b in bounds], active

    def _run(self, own: dict[str, Any]) -> Iterator[Any]:
        ended: list[bool] = own["ended"]
        block, draws = -1, [0.0]
        with contextlib.ExitStack() as stack:
            iterators = [stack.enter_context(_iterating(source)) for source in self.sources]
            table = self._table(ended)
            while table is not None:
                bounds, active = table
                number, offset = divmod(own["draws"], DRAW_BLOCK)
                if number != block:
                    block, draws = number, _draw_block(self.seed, self.epoch, number)
                pick = active[min(bisect.bisect_right(bounds, draws[offset]), len(active) - 1)]
                own["draws"] += 1
                try:
                    item = next(iterators[pick])
                except StopIteration:
                    ended[pick] = True
                    table = self._table(ended)
                    continue
                yield item


def interleave(
    sources: Sequence[Source],
    weights: Sequence[float] | None = None,
    *,
    seed: int = 0,
    stopping: Stopping = "first_exhausted",
) -> Interleave:
    """The sources' items mixed: each output item from a source chosen at random with probability by weight.

    The choices are fixed by (seed, epoch). `stopping="first_exhausted"` ends when the first source chosen has no
    more items; `"all_exhausted"` goes on with the others (their weights renormalised) until every source ended.
    """
    return _flavoured(Interleave)(sources, weights, seed=seed, stopping=stopping)


_S = TypeVar("_S", bound=Stage)
_TORCH_FLAVOURS: dict[tuple[type[Stage], type], type[Stage]] = {}


def _flavoured(cls: type[_S]) -> type[_S]:
    """`cls`, or when torch is in use a subclass that is a torch IterableDataset too, as DataLoader requires."""
    if "torch" not in sys.modules:
        return cls
    from torch.utils.data import IterableDataset  # type: ignore[import-not-found, unused-ignore]

    # Keyed by the base too: a torch module replaced in sys.modules (a test's stand-in) gets its own flavour.
    key = (cls, IterableDataset)
    flavour = _TORCH_FLAVOURS.get(key)
    if flavour is None:
        flavour = type(cls.__name__, (cls, IterableDataset), {"__module__": cls.__module__, "_plain": cls})
        _TORCH_FLAVOURS[key] = flavour
    return cast(type[_S], flavour)
