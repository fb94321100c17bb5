"""The streaming planner and the in-memory one make the same plan from the same observation."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from reconciler.plan import plan
from reconciler.plan.guards import check
from reconciler.scale.planner import stream_plan
from reconciler.scale.spill import Spill
from tests.unit.scale.trees import World, spilled, worlds


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(world=worlds())
def test_streamed_plan_is_the_in_memory_plan(world: World) -> None:
    expected = check(world.desired, world.observed, plan(world.desired, world.observed), world.limits)
    with tempfile.TemporaryDirectory() as tmp, Spill(Path(tmp)) as spill:
        streamed = stream_plan(world.desired, spilled(world.observed, spill), spill, world.limits)
        got = streamed.to_plan()
        assert got.actions == expected.actions
        assert got.edges == expected.edges
        assert got.findings == expected.findings
        assert got.errors == expected.errors
        assert got == expected
        assert streamed.actions_count == len(expected.actions)
