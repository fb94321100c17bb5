"""plan(desired, observed): the pure planner as a pipeline of passes.

Each pass is a pure function Plan -> Plan (given the same desired and observed
state). The first compares every mapping key by key; later passes rewrite or
extend the result (pairing deletes with uploads into moves, adding dependency
edges, enforcing guards). Keeping each rule in its own pass keeps each one
testable alone. Discovered actors arrive in the observation; their actors and
mappings are derived first, so the plan depends only on the specs and what was observed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reconciler.actor_layout import with_discovered
from reconciler.model import Desired, Observed, Plan
from reconciler.plan.datasets import plan_datasets, plan_tier_guards
from reconciler.plan.diff import plan_mappings
from reconciler.plan.final import plan_final
from reconciler.plan.generated import plan_manifests
from reconciler.plan.moves import plan_moves
from reconciler.plan.record_index import plan_record_indexes
from reconciler.plan.release import plan_release

Pass = Callable[[Desired, Observed, Plan], Plan]

# Later passes are appended here in the order they must run.
PASSES: Sequence[Pass] = (
    plan_moves,  # before release: a release waits for whichever action writes its key
    plan_release,
    plan_datasets,
    plan_final,  # after the datasets: a compile waits for the actions that organise its sources
    plan_tier_guards,
    plan_record_indexes,  # after the datasets' writes it waits for, before the registry that records it
    plan_manifests,  # last: a generated file waits for every action on what it describes
)


def plan(desired: Desired, observed: Observed) -> Plan:
    desired = with_discovered(desired, observed.discovered)
    result = plan_mappings(desired, observed)
    for step in PASSES:
        result = step(desired, observed, result)
    return result
