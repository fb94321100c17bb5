"""The order ready actions start in: largest first, so long transfers overlap the many short ones.

Proof by order, not time: with one worker the start order is exactly the queue's order.
"""

from __future__ import annotations

import random

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.apply import RetryPolicy, execute
from reconciler.model import Action, ActionKind, Change, ObjectRef, Plan
from reconciler.plan.graph import build_graph

NO_SLEEP = RetryPolicy(attempts=1, sleep=lambda s: None, rng=random.Random(0))
MIB = 1024 * 1024


def sized(name: str, size: int) -> Action:
    return Action(name, ActionKind.UPLOAD, Change.CREATE, "m", ObjectRef("s", name), "test", size=size)


def started_order(actions: list[Action], edges: list[tuple[str, str]]) -> list[str]:
    order: list[str] = []
    result = execute(build_graph(Plan(tuple(actions), tuple(edges))), lambda a: order.append(a.id), parallelism=1,
                     retry=NO_SLEEP)
    assert result.ok
    return order


def test_big_files_whose_keys_sort_last_start_first() -> None:
    # The bench's tree with its big files under a name that sorts after the small ones: by key they would
    # start last and run alone at the end.
    small = [sized(f"shard{i:03d}/part.jsonl", 4096 + i) for i in range(6)]
    big = [sized(f"zz/blob-{i}.bin", 64 * MIB) for i in range(3)]
    order = started_order([*small, *big], [])
    assert order[:3] == ["zz/blob-0.bin", "zz/blob-1.bin", "zz/blob-2.bin"]
    # The rest by size too, largest first.
    assert order[3:] == [a.id for a in sorted(small, key=lambda a: -a.size)]


def test_a_big_action_still_waits_for_what_it_depends_on() -> None:
    order = started_order(
        [sized("a-small", 10), sized("b-big", 100 * MIB), sized("c-mid", MIB), sized("d-other", 5)],
        [("a-small", "b-big")],
    )
    assert order == ["c-mid", "a-small", "b-big", "d-other"]


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[Action], list[tuple[str, str]]]:
    n = draw(st.integers(1, 12))
    sizes = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    actions = [sized(f"n{i:02d}", size * MIB) for i, size in enumerate(sizes)]
    # Edges only from a lower index to a higher one: always acyclic.
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs))) if pairs else []
    return actions, [(actions[i].id, actions[j].id) for i, j in chosen]


@settings(max_examples=200, deadline=None)
@given(dags())
def test_each_start_is_the_largest_ready_action(dag: tuple[list[Action], list[tuple[str, str]]]) -> None:
    actions, edges = dag
    order = started_order(actions, edges)
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(a.id for a in actions)
    graph.add_edges_from(edges)
    size = {a.id: a.size for a in actions}
    done: set[str] = set()
    for node in order:
        ready = [n for n in graph.nodes if n not in done and set(graph.predecessors(n)) <= done]
        assert node in ready  # the dependency order holds
        assert node == min(ready, key=lambda n: (-size[n], n))
        done.add(node)
    assert done == set(graph.nodes)
