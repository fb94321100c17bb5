"""What a later planner pass reads of the plan so far, and how it adds to it: the `PlanView` protocol.

The passes after release-local (datasets, the final dataset, the tier guards, record indexes, generated
files) never need the whole plan: they ask for the actions at a few keys (a dataset's canonical object,
the final dataset's sources), the actions of one kind (the deletes the tier rules judge), or how many
actions a generated file describes and an edge from each of them. Each pass is written once against this
protocol; `InMemoryView` answers it from a `Plan` (what `plan()` runs), the streaming planner answers it
from its SQLite spill (`reconciler/scale/planner.py`) without reading the plan into memory.

Every question is about the plan as it was when the pass began: what the pass adds is seen by the next pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from dataclasses import dataclass
from typing import Protocol

from reconciler.model import Action, ActionKind, Desired, Finding, FindingKind, ObjectRef, Observed, Plan


@dataclass(frozen=True, slots=True)
class Touching:
    """The actions a generated file describes: it is rendered after every one of them.

    An action matches when it belongs to `scope` (and is not of kind `scope_except`), when its target or
    source is one of `refs`, or when it is not itself a generated file's write and its target or source
    lies in one of `stores`.
    """

    scope: str | None = None
    scope_except: ActionKind | None = None
    refs: frozenset[ObjectRef] = frozenset()
    stores: frozenset[str] = frozenset()

    def __call__(self, action: Action) -> bool:
        if action.mapping == self.scope and action.kind is not self.scope_except:
            return True
        read = action.source
        if action.target in self.refs or (read is not None and read in self.refs):
            return True
        return action.kind is not ActionKind.WRITE_MANIFEST and (
            action.target.store in self.stores or (read is not None and read.store in self.stores)
        )


class PlanView(Protocol):
    """The plan so far, as a later pass reads it and adds to it."""

    def at(self, ref: ObjectRef) -> Sequence[Action]:
        """The actions whose target is `ref`, in plan order."""
        ...

    def of_kind(self, kind: ActionKind) -> Iterable[Action]:
        """Every action of `kind`, in plan order; iterated once."""
        ...

    def count(self, touching: Touching) -> int:
        """How many actions match `touching`."""
        ...

    def wait_for(self, touching: Touching, after: str) -> None:
        """An edge to `after` (an action this pass adds) from every action matching `touching`."""
        ...

    def add(
        self, actions: Sequence[Action] = (), edges: Iterable[tuple[str, str]] = (), findings: Sequence[Finding] = ()
    ) -> None:
        """The pass's actions and findings, after the plan's own; edges merged."""
        ...

    def drop_findings(self, kind: FindingKind, keys: Set[str]) -> None:
        """Remove the plan's findings of `kind` whose key is one of `keys`."""
        ...

    def refuse(self, errors: Sequence[str]) -> None:
        """Errors that make the plan unapplyable."""
        ...


class Additions:
    """What a pass adds, held until it ends: every question a pass asks is about the plan as it found it."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.actions: list[Action] = []
        self.edges: list[tuple[str, str]] = []
        self.findings: list[Finding] = []
        self.errors: list[str] = []

    def add(
        self, actions: Sequence[Action] = (), edges: Iterable[tuple[str, str]] = (), findings: Sequence[Finding] = ()
    ) -> None:
        self.actions += actions
        self.edges += edges
        self.findings += findings

    def refuse(self, errors: Sequence[str]) -> None:
        self.errors += errors


class InMemoryView(Additions):
    """`PlanView` over a `Plan` in memory; `result()` is the plan the pass makes of it."""

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        self._targets: dict[ObjectRef, list[Action]] | None = None
        self._matched: tuple[Touching, list[str]] | None = None
        self._dropped: list[tuple[FindingKind, Set[str]]] = []

    def at(self, ref: ObjectRef) -> Sequence[Action]:
        if self._targets is None:
            self._targets = {}
            for action in self.plan.actions:
                self._targets.setdefault(action.target, []).append(action)
        return self._targets.get(ref, ())

    def of_kind(self, kind: ActionKind) -> Iterator[Action]:
        return (a for a in self.plan.actions if a.kind is kind)

    def _ids(self, touching: Touching) -> list[str]:
        # A generated file asks for the count, then for the edges: one scan for both.
        if self._matched is None or self._matched[0] != touching:
            self._matched = touching, [a.id for a in self.plan.actions if touching(a)]
        return self._matched[1]

    def count(self, touching: Touching) -> int:
        return len(self._ids(touching))

    def wait_for(self, touching: Touching, after: str) -> None:
        self.edges += [(before, after) for before in self._ids(touching)]

    def drop_findings(self, kind: FindingKind, keys: Set[str]) -> None:
        self._dropped.append((kind, keys))

    def result(self) -> Plan:
        plan = self.plan
        if self.errors:
            plan = dataclasses.replace(plan, errors=(*plan.errors, *self.errors))
        if self._dropped:
            dropped = self._dropped
            kept = tuple(f for f in plan.findings if not any(f.kind is k and f.key in keys for k, keys in dropped))
            plan = dataclasses.replace(plan, findings=kept, edges=tuple(sorted(plan.edges)))
        return plan.extended(self.actions, self.edges, self.findings)


Pass = Callable[[Desired, Observed, Plan], Plan]
ViewPass = Callable[[Desired, Observed, PlanView], None]


def on_plan(step: ViewPass) -> Pass:
    """A view pass as a pure `Plan -> Plan` pass over a plan in memory."""

    def run(desired: Desired, observed: Observed, plan: Plan) -> Plan:
        view = InMemoryView(plan)
        step(desired, observed, view)
        return view.result()

    run.__name__ = run.__qualname__ = step.__name__
    run.__doc__ = step.__doc__
    return run
