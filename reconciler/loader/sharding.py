"""Who reads which record of an epoch, in what order, and how far everyone got: pure, no I/O.

The epoch's *slots* are the records of its units (an object read whole, or a
span of a big object: loader/index.py) with the units in epoch order (shuffled
by seed and epoch when asked) and each unit's records in file order. Slot
positions 0..N-1 index that sequence.

Dealing (one generation of a run with `world` ranks x `workers` consumers per
rank: DataLoader workers, or 1 in the main process). The M slots still to be
read are made a multiple of `world`: `partition="drop"` leaves out the last
M mod world (counted, logged), `"pad"` repeats slots from the front until every
rank has as many. Each rank gets K = that length / world slots, one contiguous
stretch; its workers split the stretch into contiguous parts within one slot of
each other. Contiguous stretches are what let a rank read only its share of an
object (byte ranges). K is known before any record is read, from record counts
alone: `len()` of a rank.

Shuffling (py1b, MosaicML's "block" shuffle): a consumer's stretch is cut into
blocks of `block` slots, and each block is yielded in a permutation fixed by
(seed, epoch, generation, consumer, block). Memory is one block; a one-object
dataset shuffles; a slot moves at most `block` places within its consumer's
stretch, on top of the unit order's shuffle.

Progress is a list of generations: the shape of one run and, per consumer, how
many slots it has yielded (a prefix of its stretch in yield order). A resumed run
with the same shape continues each consumer's own count; a run with another
shape first removes every slot earlier generations yielded (which needs every
consumer's count: merge the per-worker or per-rank states), then deals the
remaining slots afresh. Before + after is exactly one epoch, plus pad repeats or
minus the last generation's dropped remainder.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# 2: units may be spans of an object, ranks get contiguous stretches, blocks shuffle records.
# 3: spans are cut on loader/index.py's grid (another epoch order for a shuffled split object).
STATE_VERSION = 3
Partition = Literal["drop", "pad"]
PARTITIONS: tuple[Partition, ...] = ("drop", "pad")
Interval = tuple[int, int]  # slot positions [start, stop)


@dataclass(frozen=True, slots=True)
class Generation:
    world: int
    workers: int
    counts: Mapping[int, int] = field(default_factory=dict)  # consumer -> slots of its stretch yielded

    @property
    def consumers(self) -> int:
        return self.world * self.workers

    @property
    def complete(self) -> bool:
        return set(self.counts) == set(range(self.consumers))

    def to_json(self) -> dict[str, Any]:
        counts = {str(c): n for c, n in sorted(self.counts.items())}
        return {"world": self.world, "workers": self.workers, "counts": counts}


def epoch_order(count: int, *, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """The units' order in an epoch: as listed, or a permutation fixed by (seed, epoch)."""
    order = list(range(count))
    if shuffle:
        # A string seed is hashed with sha512 by random.Random: the same order in every process and Python run.
        random.Random(f"pixel-loader:{seed}:{epoch}").shuffle(order)
    return order


def objects_digest(identities: Iterable[str]) -> str:
    """What a saved state was taken over: resuming over other objects (or other bytes) cannot be exact."""
    return hashlib.sha256("\n".join(identities).encode()).hexdigest()[:32]


def per_rank(total: int, world: int, partition: Partition) -> int:
    """How many slots each rank yields when `total` are dealt to `world` ranks."""
    return total // world if partition == "drop" else -(-total // world)


def stretch(total: int, world: int, workers: int, consumer: int, partition: Partition) -> Interval:
    """Consumer `consumer`'s positions in the dealt sequence (the remaining slots, truncated or padded)."""
    rank, worker = divmod(consumer, workers)
    k = per_rank(total, world, partition)
    base, extra = divmod(k, workers)
    start = rank * k + worker * base + min(worker, extra)
    return start, start + base + (worker < extra)


@dataclass(frozen=True, slots=True)
class Order:
    """How a consumer's stretch is yielded: in blocks of `block` slots, each permuted (block 0: in order)."""

    seed: int
    epoch: int
    block: int

    def permutation(self, generation: int, consumer: int, index: int, size: int) -> list[int]:
        order = list(range(size))
        if self.block:
            random.Random(f"pixel-loader-block:{self.seed}:{self.epoch}:{generation}:{consumer}:{index}").shuffle(
                order
            )
        return order


class Positions:
    """A sequence of slot positions given as intervals, indexable by place (bisect over prefix sums)."""

    def __init__(self, intervals: Sequence[Interval]) -> None:
        self.intervals = [iv for iv in intervals if iv[1] > iv[0]]
        self.starts = list(itertools.accumulate((b - a for a, b in self.intervals), initial=0))

    def __len__(self) -> int:
        return self.starts[-1]

    def at(self, place: int) -> int:
        i = bisect.bisect_right(self.starts, place) - 1
        return self.intervals[i][0] + place - self.starts[i]

    def between(self, lo: int, hi: int) -> list[Interval]:
        """The positions at places [lo, hi), as intervals in place order."""
        out: list[Interval] = []
        if hi <= lo:
            return out
        i = bisect.bisect_right(self.starts, lo) - 1
        while lo < hi:
            a, b = self.intervals[i]
            offset = lo - self.starts[i]
            take = min(b - a - offset, hi - lo)
            out.append((a + offset, a + offset + take))
            lo += take
            i += 1
        return out


def _dealt(remaining: Positions, span: Interval) -> list[Interval]:
    """Slot positions of dealt places [a, b): places past the remaining slots repeat them from the front."""
    total = len(remaining)
    a, b = span
    out = remaining.between(a, min(b, total))
    place = max(a, total)
    while place < b:
        q = (place - total) % total
        take = min(b - place, total - q)
        out += remaining.between(q, q + take)
        place += take
    return out


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _subtract(keep: Sequence[Interval], remove: Sequence[Interval]) -> list[Interval]:
    """Sorted disjoint `keep` minus sorted disjoint `remove`."""
    out: list[Interval] = []
    j = 0
    for a, b in keep:
        while j < len(remove) and remove[j][1] <= a:
            j += 1
        k = j
        while a < b:
            if k >= len(remove) or remove[k][0] >= b:
                out.append((a, b))
                break
            ra, rb = remove[k]
            if ra > a:
                out.append((a, ra))
            a = max(a, rb)
            k += 1
    return out


@dataclass(frozen=True, slots=True)
class ConsumerPlan:
    """One consumer's share of one generation."""

    generation: int  # its index among the generations that yielded anything: part of the block seed
    consumer: int
    slots: Positions  # its stretch, in stretch order (before block permutation)
    start: int  # slots of it already yielded (a same-shape resume)
    order: Order
    dropped: int  # slots of the remainder left out this generation (all ranks together)
    padded: int  # repeats added this generation (all ranks together)
    past: tuple[Generation, ...] = ()  # the earlier generations it was dealt after

    def __len__(self) -> int:
        return len(self.slots)

    def yielded(self, count: int) -> list[Interval]:
        """Slot positions of this stretch's first `count` yields, merged."""
        block = self.order.block or max(count, 1)
        full = (count // block) * block
        out = self.slots.between(0, full)
        if count > full:
            index = count // block
            size = min(block, len(self.slots) - index * block)
            perm = self.order.permutation(self.generation, self.consumer, index, size)
            for i in perm[: count - full]:
                p = self.slots.at(index * block + i)
                out.append((p, p + 1))
        return _merge(out)


def progress_before(
    generations: Sequence[Generation], *, world: int, workers: int, consumer: int
) -> tuple[list[Generation], int]:
    """(the earlier generations that yielded anything, slots `consumer` has yielded in this shape already)."""
    consumers = world * workers
    if not 0 <= consumer < consumers:
        raise ValueError(f"consumer {consumer} of {consumers}")
    start = 0
    past = list(generations)
    if past and (past[-1].world, past[-1].workers) == (world, workers):
        last = past.pop()
        if consumer in last.counts:
            start = last.counts[consumer]
        elif any(last.counts.values()):
            raise ValueError(
                f"the saved state does not have the progress of consumer {consumer} of {consumers} "
                "(rank x num_workers + worker): load the state that consumer saved, or the merged states "
                "of all consumers (StreamingDataset.merge_states)"
            )
    for gen in past:
        if not gen.complete:
            raise ValueError(
                f"the saved state has the progress of only {len(gen.counts)} of its {gen.consumers} consumers: "
                "to resume with another number of ranks or workers, merge the states of all of them "
                "(StreamingDataset.merge_states)"
            )
    # A generation in which nothing was yielded changes nothing: it is left out (and takes no block seed).
    return [g for g in past if any(g.counts.values())], start


def plan(
    total: int,
    generations: Sequence[Generation],
    *,
    world: int,
    workers: int,
    consumer: int,
    partition: Partition,
    order: Order,
) -> ConsumerPlan:
    """Consumer `consumer` (rank x workers + worker) of this run's share of an epoch of `total` slots."""
    past, start = progress_before(generations, world=world, workers=workers, consumer=consumer)
    remaining: list[Interval] = [(0, total)] if total else []
    for index, gen in enumerate(past):
        slots = Positions(remaining)
        done: list[Interval] = []
        for c in range(gen.consumers):
            share = _share(slots, gen.world, gen.workers, c, partition, order, index)
            if gen.counts[c] > len(share):
                raise ValueError(_overclaim(c, gen.consumers, gen.counts[c], len(share)))
            done += share.yielded(gen.counts[c])
        remaining = _subtract(remaining, _merge(done))
    share = _share(Positions(remaining), world, workers, consumer, partition, order, len(past))
    if start > len(share):
        raise ValueError(_overclaim(consumer, world * workers, start, len(share)))
    return dataclasses.replace(share, start=start, past=tuple(past))


def _overclaim(consumer: int, consumers: int, count: int, share: int) -> str:
    # Such a state was not saved over this epoch: resuming from it would silently skip what it claims.
    return (
        f"the loaded state is not of this dataset: consumer {consumer} of {consumers} claims {count} records "
        f"yielded, its share of the epoch is {share}"
    )


def _share(
    slots: Positions, world: int, workers: int, consumer: int, partition: Partition, order: Order, generation: int
) -> ConsumerPlan:
    total = len(slots)
    dealt = per_rank(total, world, partition) * world if total else 0
    own = Positions(_dealt(slots, stretch(total, world, workers, consumer, partition)) if total else [])
    return ConsumerPlan(generation, consumer, own, 0, order, max(total - dealt, 0), max(dealt - total, 0))


def pieces(unit_records: Sequence[int], slots: Sequence[Interval]) -> list[tuple[int, int, int]]:
    """(unit, first, stop) record ranges within units for slot intervals, in the intervals' order."""
    starts = list(itertools.accumulate(unit_records, initial=0))
    out: list[tuple[int, int, int]] = []
    for a, b in slots:
        while a < b:
            unit = bisect.bisect_right(starts, a) - 1
            stop = min(b, starts[unit + 1])
            out.append((unit, a - starts[unit], stop - starts[unit]))
            a = stop
    return out


def merge_generations(states: Sequence[Sequence[Generation]]) -> list[Generation]:
    """One progress from the per-consumer progresses of one run: earlier generations agree, last ones unite."""
    begun = [list(state) for state in states if state]
    if not begun:
        return []
    past, last = begun[0][:-1], begun[0][-1]
    counts: dict[int, int] = {}
    for state in begun:
        if state[:-1] != past or (state[-1].world, state[-1].workers) != (last.world, last.workers):
            raise ValueError("the states to merge come from different runs (other earlier progress or shape)")
        for c, n in state[-1].counts.items():
            counts[c] = max(n, counts.get(c, 0))
    return [*past, Generation(last.world, last.workers, counts)]
