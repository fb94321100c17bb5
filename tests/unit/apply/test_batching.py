"""Laws of cutting a plan into batches: a partition, bounded, acyclic, and ordered like the action DAG."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.apply.batching import make_batches
from reconciler.model import Action, ActionKind, Change, ObjectRef, Plan


def _action(i: int, size: int) -> Action:
    return Action(
        id=f"a{i:05d}",
        kind=ActionKind.UPLOAD,
        change=Change.CREATE,
        mapping="m",
        target=ObjectRef("s3", f"p{i % 7}/k{i:05d}"),
        reason="test",
        size=size,
    )


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    sizes = draw(st.lists(st.integers(0, 5_000), min_size=0, max_size=60))
    actions = tuple(_action(i, s) for i, s in enumerate(sizes))
    pairs = st.tuples(st.integers(0, max(0, len(actions) - 1)), st.integers(0, max(0, len(actions) - 1)))
    # Edges only from a lower index to a higher one: any DAG shape, never a cycle.
    raw = draw(st.lists(pairs, max_size=120)) if actions else []
    edges = tuple(sorted({(actions[a].id, actions[b].id) for a, b in raw if a < b}))
    return Plan(actions=actions, edges=edges)


@settings(max_examples=200, deadline=None)
@given(plan=plans(), max_actions=st.integers(1, 12), max_bytes=st.integers(1, 20_000))
def test_batches_partition_the_plan_within_bounds_and_respect_every_edge(
    plan: Plan, max_actions: int, max_bytes: int
) -> None:
    cut = make_batches(plan, max_actions=max_actions, max_bytes=max_bytes)
    where: dict[str, int] = {}
    for batch in cut.batches:
        assert batch.actions, "no empty batch"
        assert len(batch.actions) <= max_actions
        assert batch.size <= max_bytes or len(batch.actions) == 1
        for action in batch.actions:
            assert action.id not in where, f"{action.id} is in two batches"
            where[action.id] = batch.index
    assert set(where) == {a.id for a in plan.actions}

    graph: nx.DiGraph[int] = nx.DiGraph()
    graph.add_nodes_from(b.index for b in cut.batches)
    graph.add_edges_from((dep, b.index) for b in cut.batches for dep in b.after)
    assert nx.is_directed_acyclic_graph(graph)
    position = {b.index: n for n, b in enumerate(cut.batches)}
    for before, after in plan.edges:
        assert where[before] != where[after], "an edge never lies inside one batch"
        assert nx.has_path(graph, where[before], where[after])
        assert position[where[before]] < position[where[after]], "the listed order is a valid run order"
        assert before in cut.depends_on[after]


def test_tasks_grow_with_actions_over_the_bound_not_with_actions() -> None:
    actions = tuple(_action(i, 1000) for i in range(20_000))
    cut = make_batches(Plan(actions=actions, edges=()), max_actions=500)
    assert len(cut.batches) == 40


def test_neighbouring_keys_share_a_batch() -> None:
    actions = tuple(_action(i, 1) for i in range(70))
    cut = make_batches(Plan(actions=actions, edges=()), max_actions=10)
    for batch in cut.batches:
        assert len({a.target.key.split("/")[0] for a in batch.actions}) == 1


def test_a_cycle_is_refused() -> None:
    a, b = _action(1, 1), _action(2, 1)
    with pytest.raises(ValueError, match="cycle"):
        make_batches(Plan(actions=(a, b), edges=((a.id, b.id), (b.id, a.id))))
