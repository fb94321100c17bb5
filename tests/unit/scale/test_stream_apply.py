"""Laws of the streamed apply: levels computed in SQLite are the in-memory batching's, and running level by
level runs every action after all it waits for, skipping exactly what a failure reaches."""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import networkx as nx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.apply.batching import levels
from reconciler.apply.executor import DONE, FAILED, ApplyResult, NullReporter, Outcome, Reporter
from reconciler.apply.runner import ByteTotals
from reconciler.choices import OutputFormat, Scale
from reconciler.cli import main
from reconciler.commands import scale as scale_command
from reconciler.errors import UserError
from reconciler.model import Action, ActionKind, Change, Desired, Finding, FindingKind, ObjectRef, Plan, Precondition
from reconciler.plan import plan, saved_checks
from reconciler.plan.guards import GuardLimits, check
from reconciler.scale import apply as stream_checks
from reconciler.scale import planner as stream_planner
from reconciler.scale.apply import compute_levels, levels_of, run_levels
from reconciler.scale.planner import SCHEMA, StreamedPlan, Writer
from reconciler.scale.spill import Spill
from reconciler.stores.base import Store
from tests.unit.scale.trees import World, worlds


def _action(i: int) -> Action:
    return Action(
        id=f"upload:s3:k{i:03d}",
        kind=ActionKind.UPLOAD,
        change=Change.CREATE,
        mapping="m",
        target=ObjectRef("s3", f"p{i % 3}/k{i:03d}"),
        reason="test",
        size=i,
    )


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    count = draw(st.integers(0, 40))
    actions = [_action(i) for i in range(count)]
    pairs = st.tuples(st.integers(0, max(0, count - 1)), st.integers(0, max(0, count - 1)))
    raw = draw(st.lists(pairs, max_size=90)) if actions else []
    # Edges from a lower index to a higher one (a DAG), the actions then shuffled: plan order is not edge order.
    edges = tuple(sorted({(actions[a].id, actions[b].id) for a, b in raw if a < b}))
    return Plan(actions=tuple(draw(st.permutations(actions))), edges=edges)


@contextmanager
def spilled(plan: Plan) -> Iterator[StreamedPlan]:
    with tempfile.TemporaryDirectory() as parent, Spill(Path(parent)) as spill:
        for statement in SCHEMA:
            spill.db.execute(statement)
        out = Writer(spill.db)
        for action in plan.actions:
            out.action(action)
        for before, after in plan.edges:
            out.edge(before, after)
        yield StreamedPlan(spill, "digest", (), {}, (), actions_count=out.seq)


@settings(max_examples=150, deadline=None)
@given(plan=plans())
def test_levels_in_the_spill_are_the_in_memory_levels_and_every_edge_climbs(plan: Plan) -> None:
    with spilled(plan) as streamed:
        found = levels_of(streamed)
        (rows,) = streamed.spill.db.execute("SELECT count(*) FROM levels").fetchone()
    assert rows == len(plan.actions)  # one level per action: none runs twice
    assert found == levels(plan)
    assert all(found[before] < found[after] for before, after in plan.edges)


def test_a_cycle_is_refused_before_anything_runs() -> None:
    a, b, c = (_action(i) for i in range(3))
    plan = Plan(actions=(a, b, c), edges=((a.id, b.id), (b.id, c.id), (c.id, b.id)))
    with spilled(plan) as streamed, pytest.raises(UserError, match="cycle"):
        compute_levels(streamed)


class _Recording:
    """A PlanExecutor that runs nothing: records each batch and fails the actions it is told to."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.batches: list[list[str]] = []

    def check(self, plan: Plan, desired: Desired) -> None:
        assert plan.edges == ()

    def run(
        self, plan: Plan, desired: Desired, stores: Mapping[str, Store], *, reporter: Reporter, stop: threading.Event
    ) -> tuple[ApplyResult, ByteTotals]:
        self.batches.append([a.id for a in plan.actions])
        outcomes = [Outcome(a, FAILED if a.id in self.failing else DONE) for a in plan.actions]
        return ApplyResult(outcomes), ByteTotals()


@settings(max_examples=100, deadline=None)
@given(plan=plans(), data=st.data(), batch=st.integers(1, 7))
def test_running_by_levels_respects_every_edge_and_skips_what_a_failure_reaches(
    plan: Plan, data: st.DataObject, batch: int
) -> None:
    ids = [a.id for a in plan.actions]
    failing = set(data.draw(st.lists(st.sampled_from(ids), max_size=4))) if ids else set()
    executor = _Recording(failing)
    with spilled(plan) as streamed:
        result = run_levels(
            streamed, Desired(stores={}, mappings=()), {}, executor, reporter=NullReporter(), stop=threading.Event(),
            batch=batch,
        )
    batch_of = {action: n for n, ran in enumerate(executor.batches) for action in ran}
    assert all(len(ran) <= batch for ran in executor.batches)
    graph: nx.DiGraph[str] = nx.DiGraph(plan.edges)
    graph.add_nodes_from(ids)
    reached = {d for f in failing for d in nx.descendants(graph, f)}
    # What a failure reaches never runs; everything else runs once, in a batch after all it waits for.
    assert set(batch_of) == set(ids) - reached
    assert all(batch_of[b] < batch_of[a] for b, a in plan.edges if a in batch_of)
    assert {o.action.id for o in result.failed} == failing - reached
    assert {o.action.id for o in result.skipped} == reached
    assert result.done == len(ids) - len(failing | reached)
    assert result.ok == (not failing)


def test_a_large_plan_file_streams_unless_told_otherwise_or_the_report_is_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    small.write_bytes(b"{}")
    large.write_bytes(b" " * 64)
    monkeypatch.setattr(scale_command, "STREAM_ABOVE_BYTES", 32)
    assert scale_command.streams(None, large, OutputFormat.TEXT)
    assert not scale_command.streams(None, small, OutputFormat.TEXT)
    assert not scale_command.streams(None, large, OutputFormat.JSON)  # a JSON report lists every action
    assert not scale_command.streams(Scale.MEMORY, large, OutputFormat.TEXT)
    assert scale_command.streams(Scale.STREAM, small, OutputFormat.TEXT)
    assert not scale_command.streams(None, tmp_path / "missing.json", OutputFormat.TEXT)


def test_scale_stream_without_a_plan_file_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["apply", "--scale", "stream", "--specs", str(tmp_path)])
    assert result.exit_code == 1
    assert "--scale stream applies a saved plan" in result.stderr


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(world=worlds(), limits=st.builds(GuardLimits, max_delete=st.integers(0, 3), max_superseded=st.integers(0, 3),
                                        allow_mass_delete=st.booleans(), strict=st.booleans()),
       hand_edit=st.integers(0, 30))
def test_the_streamed_saved_plan_check_is_the_in_memory_one(world: World, limits: GuardLimits, hand_edit: int) -> None:
    planned = check(world.desired, world.observed, plan(world.desired, world.observed), world.limits)
    actions = list(planned.actions)
    if actions and hand_edit < len(actions):
        # An edited action: moved outside every mapping, or stripped of its preconditions.
        edited = actions[hand_edit]
        actions[hand_edit] = (
            dataclasses.replace(edited, precondition=Precondition())
            if hand_edit % 2
            else dataclasses.replace(edited, target=ObjectRef(edited.target.store, "elsewhere/" + edited.target.key))
        )
    saved = dataclasses.replace(planned, actions=tuple(actions), errors=())
    if len({a.id for a in saved.actions}) != len(saved.actions):
        return
    with spilled(saved) as streamed:
        streamed.findings_count = 0
        writer = Writer(streamed.spill.db)
        for finding in saved.findings:
            writer.finding(finding)
        streamed.object_counts = dict(saved.object_counts)
        assert stream_checks.problems(world.desired, streamed, limits) == saved_checks.problems(
            world.desired, saved, limits
        )


def test_strict_counts_the_streamed_findings_in_sql_without_loading_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # A plan with millions of findings must not hold them all to count them: loading any finding here fails.
    findings = (
        Finding(FindingKind.MISSING, "m", "a", "gone"),
        Finding(FindingKind.MISSING, "m", "b", "gone"),
        Finding(FindingKind.UNMANAGED, "m", "c", "extra"),
    )
    saved = Plan(actions=(), edges=(), findings=findings, spec_digest="digest")
    desired = Desired(stores={}, mappings=())
    limits = GuardLimits(strict=True)

    def refuse(self: StreamedPlan) -> Iterator[Finding]:
        raise AssertionError("a streamed check loaded the findings")

    expected = saved_checks.problems(desired, saved, limits)
    assert expected == ["--strict: the plan has 3 finding(s) (2 missing, 1 unmanaged); resolve them or drop --strict"]
    with spilled(saved) as streamed:
        writer = Writer(streamed.spill.db)
        for finding in findings:
            writer.finding(finding)
        monkeypatch.setattr(StreamedPlan, "findings", refuse)
        assert stream_checks.problems(desired, streamed, limits) == expected
        assert stream_planner._guard_errors(desired, streamed, limits) == expected
