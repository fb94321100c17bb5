"""Cut a plan's action DAG into batches: the unit of work a distributed executor schedules.

One task per action would give a million-action plan a million-task graph that
no scheduler serves well; a batch groups up to `max_actions` actions (and about
`max_bytes` of data) that lie near each other in key order. Pure: a function of
the Plan and the bounds only.

Every action gets a *level*: the length of the longest dependency path that ends
in it. Actions of one level never depend on each other, so a batch takes actions
of one level only, and a batch edge (from the batch of `a` to the batch of `b`)
for every action edge `a -> b` always goes from a lower level to a higher one:
the batch graph is acyclic by construction and running batches in its order
runs every action after everything it depends on.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.model import Action, Plan

DEFAULT_MAX_ACTIONS = 500
DEFAULT_MAX_BYTES = 2 * 1024**3


@dataclass(frozen=True, slots=True)
class Batch:
    index: int
    level: int
    actions: tuple[Action, ...]
    after: tuple[int, ...]  # indexes of the batches this one waits for

    @property
    def size(self) -> int:
        return sum(a.size for a in self.actions)


@dataclass(frozen=True, slots=True)
class Batches:
    batches: tuple[Batch, ...]  # in an order that respects `after`: every batch after those it waits for
    # action id -> ids of the actions it depends on: a batch skips an action whose dependency did not succeed.
    depends_on: Mapping[str, tuple[str, ...]]


def levels(plan: Plan) -> dict[str, int]:
    """Longest dependency path ending in each action (0 for an action that waits for nothing)."""
    successors: dict[str, list[str]] = defaultdict(list)
    waiting = {a.id: 0 for a in plan.actions}
    for before, after in plan.edges:
        successors[before].append(after)
        waiting[after] += 1
    level = dict.fromkeys(waiting, 0)
    ready = deque(sorted(node for node, n in waiting.items() if n == 0))
    seen = 0
    while ready:
        node = ready.popleft()
        seen += 1
        for child in successors[node]:
            level[child] = max(level[child], level[node] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if seen != len(waiting):
        raise ValueError("the plan's action graph has a cycle: it cannot be cut into batches")
    return level


def _locality(action: Action) -> tuple[str, str, str]:
    # Neighbouring keys share a prefix: a batch covers one stretch of one store's key space.
    return (action.target.store, action.target.key, action.id)


def make_batches(
    plan: Plan, *, max_actions: int = DEFAULT_MAX_ACTIONS, max_bytes: int = DEFAULT_MAX_BYTES
) -> Batches:
    """Every action in exactly one batch of at most `max_actions`, and `max_bytes` unless one action is larger."""
    if max_actions < 1 or max_bytes < 1:
        raise ValueError("batch bounds must be positive")
    level = levels(plan)
    by_level: dict[int, list[Action]] = defaultdict(list)
    for action in plan.actions:
        by_level[level[action.id]].append(action)
    chunks: list[tuple[int, list[Action]]] = []
    for lvl in sorted(by_level):
        current: list[Action] = []
        nbytes = 0
        for action in sorted(by_level[lvl], key=_locality):
            if current and (len(current) >= max_actions or nbytes + action.size > max_bytes):
                chunks.append((lvl, current))
                current, nbytes = [], 0
            current.append(action)
            nbytes += action.size
        if current:
            chunks.append((lvl, current))
    batch_of = {a.id: index for index, (_, actions) in enumerate(chunks) for a in actions}
    after: dict[int, set[int]] = defaultdict(set)
    depends_on: dict[str, list[str]] = defaultdict(list)
    for before, later in plan.edges:
        depends_on[later].append(before)
        after[batch_of[later]].add(batch_of[before])
    batches = tuple(
        Batch(index, lvl, tuple(actions), tuple(sorted(after[index]))) for index, (lvl, actions) in enumerate(chunks)
    )
    return Batches(batches, {k: tuple(sorted(v)) for k, v in depends_on.items()})
