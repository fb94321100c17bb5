"""A plan's DAG is built once per apply: `check` builds it before anything is touched, `run` walks that one.

10,005 actions took 20-50 ms to build, and the apply built them twice before its first action could start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import cast

import pytest

from reconciler.apply import executor
from reconciler.apply.executor import LocalExecutor, NullReporter
from reconciler.model import Action, ActionKind, Change, Desired, ObjectRef, Plan
from reconciler.plan.graph import build_graph


def upload(name: str) -> Action:
    return Action(name, ActionKind.UPLOAD, Change.CREATE, "m", ObjectRef("s", name), "test", size=1)


def test_the_graph_check_built_is_the_one_run_walks_and_no_other_plan_borrows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[Plan] = []

    def counted(plan: Plan) -> object:
        built.append(plan)
        return build_graph(plan)

    ran: list[str] = []

    def runner(desired: Desired, stores: object, on_bytes: object) -> Callable[[Action], None]:
        return lambda action: ran.append(action.id)

    monkeypatch.setattr(executor, "build_graph", counted)
    monkeypatch.setattr(executor, "build_runner", runner)
    local = LocalExecutor(1)
    plan = Plan((upload("a"), upload("b")), (("b", "a"),))
    local.check(plan, cast(Desired, None))
    result, _ = local.run(plan, cast(Desired, None), {}, reporter=NullReporter(), stop=threading.Event())
    assert result.ok and ran == ["b", "a"]  # the edge held: the checked graph is the plan's
    assert built == [plan]
    # A plan never checked (here: another one, run after) is walked on a graph of its own.
    other = Plan((upload("c"),), ())
    local.run(other, cast(Desired, None), {}, reporter=NullReporter(), stop=threading.Event())
    assert built == [plan, other] and ran == ["b", "a", "c"]
    # And the first plan, run again, builds again: a graph is lent to one run.
    local.run(plan, cast(Desired, None), {}, reporter=NullReporter(), stop=threading.Event())
    assert built == [plan, other, plan]
