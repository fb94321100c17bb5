"""Who reads which record of an epoch, and how far everyone got: pure, no I/O.

The epoch is one deterministic sequence of record slots: the objects in epoch
order (shuffled by seed and epoch when asked), each object's records in file
order. With C consumers (world_size ranks x num_workers DataLoader workers, or
one per rank in the main process) consumer c takes every slot s with
s % C == c. Each rank therefore gets the same number of records, give or take
one, which keeps distributed training in step.

Progress is a list of generations. A generation is the shape of one run (C) and,
per consumer, how many of its slots it has consumed; a consumer's consumed
slots are always a prefix of its slice. A resumed run with the same shape
continues its own slice; a run with another shape (more workers, fewer ranks)
first removes every slot the earlier generations consumed (which needs every
consumer's count: merge the per-worker or per-rank states), then deals the
remaining slots out afresh, interleaved the same way. Before + after is then
exactly one uninterrupted epoch, however often and however it was re-sharded.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Generation:
    consumers: int
    counts: Mapping[int, int] = field(default_factory=dict)  # consumer -> slots of its slice consumed

    @property
    def complete(self) -> bool:
        return set(self.counts) == set(range(self.consumers))

    def to_json(self) -> dict[str, Any]:
        return {"consumers": self.consumers, "counts": {str(c): n for c, n in sorted(self.counts.items())}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Generation:
        consumers = int(data["consumers"])
        counts = {int(c): int(n) for c, n in dict(data.get("counts", {})).items()}
        if consumers < 1 or any(not 0 <= c < consumers or n < 0 for c, n in counts.items()):
            raise ValueError(f"not a loader state generation: {dict(data)}")
        return cls(consumers, counts)


def epoch_order(count: int, *, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """The objects' order in an epoch: as listed, or a permutation fixed by (seed, epoch)."""
    order = list(range(count))
    if shuffle:
        # A string seed is hashed with sha512 by random.Random: the same order in every process and Python run.
        random.Random(f"pixel-loader:{seed}:{epoch}").shuffle(order)
    return order


def objects_digest(identities: Iterable[str]) -> str:
    """What a saved state was taken over: resuming over other objects (or other bytes) cannot be exact."""
    return hashlib.sha256("\n".join(identities).encode()).hexdigest()[:32]


class Slicer:
    """Called once per slot, in epoch order: does this consumer take it?"""

    def __init__(self, past: Sequence[Generation], consumers: int, me: int, start: int = 0) -> None:
        if not 0 <= me < consumers:
            raise ValueError(f"consumer {me} of {consumers}")
        for gen in past:
            if not gen.complete:
                raise ValueError(
                    f"the saved state has the progress of only {len(gen.counts)} of its {gen.consumers} consumers: "
                    "to resume with another number of ranks or workers, merge the states of all of them "
                    "(StreamingDataset.merge_states)"
                )
        # Generations in which nothing was consumed change nothing.
        self.past = tuple(g for g in past if any(g.counts.values()))
        self.consumers = consumers
        self.me = me
        self.start = start
        self.taken = 0  # slots of this consumer's slice taken in this run
        self._seen = 0
        self._passed = [0] * len(self.past)
        self.trivial = not self.past and consumers == 1 and start == 0

    def take(self) -> bool:
        j = self._seen
        self._seen += 1
        for level, gen in enumerate(self.past):
            c = gen.consumers
            if j // c < gen.counts.get(j % c, 0):
                return False  # consumed by an earlier run
            j = self._passed[level]
            self._passed[level] += 1
        if j % self.consumers != self.me or j // self.consumers < self.start:
            return False
        self.taken += 1
        return True

    def overclaimed(self) -> str | None:
        """Once every slot of the epoch went by: a saved count larger than its consumer's share, else None.

        Such a state was not saved over this epoch; resuming from it would silently skip what it claims."""
        length = self._seen  # the slots reaching each generation: all of them, then those it left over
        for level, gen in enumerate(self.past):
            for consumer, count in sorted(gen.counts.items()):
                share = len(range(consumer, length, gen.consumers))
                if count > share:
                    return (
                        f"consumer {consumer} of {gen.consumers} claims {count} records consumed, "
                        f"its share of the epoch is {share}"
                    )
            length = self._passed[level]
        share = len(range(self.me, length, self.consumers))
        if self.start > share:
            return f"consumer {self.me} of {self.consumers} claims {self.start} records consumed, its share is {share}"
        return None

    def generations(self) -> list[Generation]:
        """The progress so far: earlier runs, then this consumer's count in this run."""
        return [*self.past, Generation(self.consumers, {self.me: self.start + self.taken})]


def continue_from(generations: Sequence[Generation], consumers: int, me: int) -> Slicer:
    """The slicer for consumer `me` of `consumers`, resuming from saved generations."""
    if generations and generations[-1].consumers == consumers:
        last = generations[-1]
        if me not in last.counts:
            if any(last.counts.values()):
                raise ValueError(
                    f"the saved state does not have the progress of consumer {me} of {consumers} "
                    "(rank x num_workers + worker): load the state that consumer saved, or the merged states "
                    "of all consumers (StreamingDataset.merge_states)"
                )
            return Slicer(generations[:-1], consumers, me)
        return Slicer(generations[:-1], consumers, me, last.counts[me])
    return Slicer(generations, consumers, me)


def merge_generations(states: Sequence[Sequence[Generation]]) -> list[Generation]:
    """One progress from the per-consumer progresses of one run: earlier generations agree, last ones unite."""
    begun = [list(state) for state in states if state]
    if not begun:
        return []
    past, consumers = begun[0][:-1], begun[0][-1].consumers
    counts: dict[int, int] = {}
    for state in begun:
        if state[:-1] != past or state[-1].consumers != consumers:
            raise ValueError("the states to merge come from different runs (other earlier progress or consumer count)")
        for c, n in state[-1].counts.items():
            counts[c] = max(n, counts.get(c, 0))
    return [*past, Generation(consumers, counts)]
