"""The training-data world (actors, datasets, registry, inventory) planned streamed: the observation spilled
by the streaming observer, the later passes on the plan in memory, the same plan as `plan()`."""

from __future__ import annotations

from pathlib import Path

from reconciler.observe import StreamingHasher
from reconciler.plan import plan
from reconciler.plan.guards import GuardLimits, check
from reconciler.scale.observe import observe_spilled
from reconciler.scale.planner import needs_whole_plan, stream_plan
from reconciler.scale.spill import Spill
from tests.unit.manifests.world import build


def test_the_training_data_world_streams_to_the_same_plan(tmp_path: Path) -> None:
    world = build(tmp_path)
    desired, observed = world.observe()
    limits = GuardLimits(max_delete=0)
    expected = check(desired, observed, plan(desired, observed), limits)
    assert needs_whole_plan(desired)
    assert {a.kind.value for a in expected.actions} >= {"upload", "write-manifest"}
    with Spill(tmp_path / "spill") as spill:
        spilled = observe_spilled(desired, world.stores, StreamingHasher(), spill)
        assert spilled.generated == observed.generated and spilled.tiers == observed.tiers
        for name, obs in observed.mappings.items():
            assert dict(spilled.mappings[name].local.items()) == dict(obs.local)
            assert dict(spilled.mappings[name].remote.items()) == dict(obs.remote)
        assert stream_plan(desired, spilled, spill, limits).to_plan() == expected
