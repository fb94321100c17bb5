"""The streaming planner and the in-memory one make the same plan from the same observation, and the
streamed plan file is the very file `pixel plan -out` writes for it."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.commands.planfile import load_saved
from reconciler.model import Plan
from reconciler.plan import plan, saved_checks, savedfile
from reconciler.plan.guards import check
from reconciler.scale.apply import problems
from reconciler.scale.planfile import write_streamed
from reconciler.scale.planner import StreamedPlan, stream_plan
from reconciler.scale.reader import read_into
from reconciler.scale.spill import Spill
from tests.unit.scale.training_worlds import training_worlds
from tests.unit.scale.trees import World, spilled, worlds


def _assert_same(streamed: StreamedPlan, expected: Plan) -> None:
    got = streamed.to_plan()
    # Part by part first: a difference reads as the part that differs.
    assert got.actions == expected.actions
    assert got.edges == expected.edges
    assert got.findings == expected.findings
    assert got.errors == expected.errors
    assert got == expected
    assert (streamed.actions_count, streamed.findings_count) == (len(expected.actions), len(expected.findings))


@pytest.mark.slow
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(world=worlds(), chunk=st.sampled_from([1, 7, 64, 1 << 20]))
def test_streamed_plan_is_the_in_memory_plan(world: World, chunk: int) -> None:
    expected = check(world.desired, world.observed, plan(world.desired, world.observed), world.limits)
    with tempfile.TemporaryDirectory() as tmp, Spill(Path(tmp)) as spill:
        streamed = stream_plan(world.desired, spilled(world.observed, spill), spill, world.limits)
        _assert_same(streamed, expected)

        out = Path(tmp) / "plan.json"
        try:
            wanted = b"".join(savedfile.lines(expected, limits=world.limits))
        except (TypeError, UnicodeError):
            # A local name that is not UTF-8 cannot be saved in JSON by either writer; neither leaves a file.
            with pytest.raises((TypeError, UnicodeError)):
                write_streamed(streamed, out, limits=world.limits)
            assert list(Path(tmp).glob("*plan.json*")) == []
            return
        write_streamed(streamed, out, limits=world.limits)
        written = out.read_bytes()
        # Same digest: byte for byte the framed file `pixel plan -out` saves the in-memory plan as.
        assert hashlib.sha256(written).hexdigest() == hashlib.sha256(wanted).hexdigest(), (written, wanted)
        assert load_saved(out).plan == expected
        # Read back an element at a time, as `pixel show --scale stream` does: the same plan.
        with Spill(Path(tmp)) as again:
            read = read_into(out, again, chunk=chunk)
            assert read.to_plan() == expected
            assert (read.tallies, read.actions_count, read.findings_count) == (
                streamed.tallies,
                streamed.actions_count,
                streamed.findings_count,
            )


@pytest.mark.slow
@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_a_training_data_world_streams_to_the_in_memory_plan(data: st.DataObject) -> None:
    """Tiers, datasets, a registry with record indexes, an inventory, actors and a final dataset: the later
    passes run on the spill give the plan they give in memory."""
    with tempfile.TemporaryDirectory() as tmp:
        world = data.draw(training_worlds(Path(tmp)))
        expected = check(world.desired, world.observed, plan(world.desired, world.observed), world.limits)
        with Spill(Path(tmp) / "spill") as spill:
            streamed = stream_plan(world.desired, spilled(world.observed, spill), spill, world.limits)
            _assert_same(streamed, expected)
            # The streamed apply's check of the saved plan is the in-memory one.
            assert problems(world.desired, streamed, world.limits) == saved_checks.problems(
                world.desired, expected, world.limits
            )
