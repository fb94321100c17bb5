"""The DAG walk: ordering, failure isolation, retries."""

from __future__ import annotations

import random
import threading

import networkx as nx
import pytest

from reconciler.apply import RetryPolicy, execute
from reconciler.model import Action, ActionKind, Change, ObjectRef, Plan
from reconciler.plan.graph import PlanCycleError, build_graph
from reconciler.stores.base import PermanentStoreError, TransientStoreError


def act(name: str) -> Action:
    return Action(name, ActionKind.UPLOAD, Change.CREATE, "m", ObjectRef("s", name), "test")


def graph(names: list[str], edges: list[tuple[str, str]]) -> nx.DiGraph[str]:
    return build_graph(Plan(tuple(act(n) for n in names), tuple(edges)))


NO_SLEEP = RetryPolicy(attempts=4, sleep=lambda s: None, rng=random.Random(0))


def test_dependencies_run_before_dependents() -> None:
    order: list[str] = []
    lock = threading.Lock()

    def run(a: Action) -> None:
        with lock:
            order.append(a.id)

    g = graph(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("a", "d")])
    result = execute(g, run, parallelism=4, retry=NO_SLEEP)
    assert result.ok and len(result.done) == 4
    assert order.index("a") < order.index("b") < order.index("c")
    assert order.index("a") < order.index("d")


def test_failure_skips_descendants_and_independent_work_goes_on() -> None:
    def run(a: Action) -> None:
        if a.id == "b":
            raise PermanentStoreError("denied", code="AccessDenied", key="b")

    g = graph(["a", "b", "c", "d", "e"], [("a", "b"), ("b", "c"), ("c", "d")])
    result = execute(g, run, parallelism=2, retry=NO_SLEEP)
    assert {o.action.id for o in result.done} == {"a", "e"}
    assert [(o.action.id, o.code) for o in result.failed] == [("b", "AccessDenied")]
    assert {(o.action.id, o.blocked_by) for o in result.skipped} == {("c", "b"), ("d", "b")}
    assert not result.ok


def test_transient_errors_are_retried_then_succeed() -> None:
    calls = {"n": 0}
    delays: list[float] = []

    def run(a: Action) -> None:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TransientStoreError("503 SlowDown", code="SlowDown")

    policy = RetryPolicy(attempts=5, base_delay=1.0, max_delay=4.0, sleep=delays.append, rng=random.Random(1))
    result = execute(graph(["a"], []), run, retry=policy)
    assert result.ok and result.done[0].attempts == 3
    assert len(delays) == 2 and 0 <= delays[0] <= 1.0 and 0 <= delays[1] <= 2.0


def test_transient_errors_give_up_after_the_attempt_budget() -> None:
    def run(a: Action) -> None:
        raise TransientStoreError("connection reset", code="Network")

    result = execute(graph(["a"], []), run, retry=NO_SLEEP)
    (failed,) = result.failed
    assert failed.attempts == 4 and "gave up after 4 attempts" in failed.error


def test_cycle_is_rejected() -> None:
    with pytest.raises(PlanCycleError):
        graph(["a", "b"], [("a", "b"), ("b", "a")])
