"""plan(desired, observed): the pure planner as a pipeline of passes.

Each pass is a pure function Plan -> Plan (given the same desired and observed
state). The first compares every mapping key by key; later passes rewrite or
extend the result (pairing deletes with uploads into moves, adding dependency
edges, enforcing guards). Keeping each rule in its own pass keeps each one
testable alone. Discovered actors arrive in the observation; their actors and
mappings are derived first, so the plan depends only on the specs and what was observed.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.actor_layout import with_discovered
from reconciler.model import Desired, Observed, Plan
from reconciler.plan.datasets import datasets_pass, tier_guards_pass
from reconciler.plan.diff import plan_mappings
from reconciler.plan.final import final_pass
from reconciler.plan.generated import manifests_pass
from reconciler.plan.moves import plan_moves
from reconciler.plan.record_index import record_indexes_pass
from reconciler.plan.release import plan_release
from reconciler.plan.view import Pass, ViewPass, on_plan

# The passes after release-local, in the order they must run. Each reads only what it needs of the plan so far
# through a `PlanView`, so the streaming planner (reconciler/scale/) runs these very passes on its spill.
LATER_PASSES: Sequence[ViewPass] = (
    datasets_pass,
    final_pass,  # after the datasets: a compile waits for the actions that organise its sources
    tier_guards_pass,
    record_indexes_pass,  # after the datasets' writes it waits for, before the registry that records it
    manifests_pass,  # last: a generated file waits for every action on what it describes
)


PASSES: Sequence[Pass] = (
    plan_moves,  # before release: a release waits for whichever action writes its key
    plan_release,
    *map(on_plan, LATER_PASSES),
)


def plan(desired: Desired, observed: Observed) -> Plan:
    desired = with_discovered(desired, observed.discovered)
    result = plan_mappings(desired, observed)
    for step in PASSES:
        result = step(desired, observed, result)
    return result
