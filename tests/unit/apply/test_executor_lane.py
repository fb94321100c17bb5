"""The executor's DAG walk with a lane (apply/executor.py `Lane`): actions the executor's own thread carries out.

A fake lane holds what it is given and finishes one action per `wait`, so the walk's order, its parallelism,
the retries of what the lane could not finish and Ctrl-C are seen without a socket. Actions whose id starts
with "lane" go to the lane; the others to the worker threads.
"""

from __future__ import annotations

import random
import signal
import threading
from collections import Counter
from collections.abc import Callable

import networkx as nx
import pytest

from reconciler.apply import RetryPolicy, execute
from reconciler.apply.executor import DONE, FAILED, NOT_STARTED, ApplyResult
from reconciler.model import Action, ActionKind, Change, ObjectRef, Plan
from reconciler.plan.graph import build_graph
from reconciler.stores.base import PermanentStoreError, TransientStoreError

POLICY = RetryPolicy(attempts=4, sleep=lambda s: None, rng=random.Random(0))


def act(name: str) -> Action:
    return Action(name, ActionKind.UPLOAD, Change.CREATE, "m", ObjectRef("s", name), "test", size=1)


def graph(names: list[str], edges: list[tuple[str, str]] = []) -> nx.DiGraph[str]:  # noqa: B006
    return build_graph(Plan(tuple(act(n) for n in names), tuple(edges)))


class FakeLane:
    def __init__(
        self,
        result: Callable[[Action], Exception | None] = lambda a: None,
        again: Callable[[Action], None] = lambda a: None,
    ) -> None:
        self._result = result
        self._again = again
        self.held: list[Action] = []
        self.events: list[str] = []
        self.again_calls: Counter[str] = Counter()
        self.waits = 0
        self.on_wait: Callable[[int], None] = lambda n: None
        self.busiest = 0  # the most actions seen in flight at once, lane and workers together
        self.workers = 0
        self.lock = threading.Lock()

    def takes(self, action: Action) -> bool:
        return action.id.startswith("lane")

    def start(self, action: Action) -> None:
        with self.lock:
            self.held.append(action)
            self.events.append(f"start {action.id}")
            self.busiest = max(self.busiest, len(self.held) + self.workers)

    def in_flight(self) -> int:
        return len(self.held)

    def wait(self) -> list[tuple[Action, Exception | None, float]]:
        self.waits += 1
        self.on_wait(self.waits)
        with self.lock:
            action = self.held.pop(0)
            self.events.append(f"land {action.id}")
        return [(action, self._result(action), 0.0)]

    def wake(self) -> None:
        pass

    def again(self, action: Action) -> None:
        self.again_calls[action.id] += 1
        self._again(action)

    def worker(self, action: Action) -> None:
        """The executor's `run`, on worker threads."""
        with self.lock:
            self.workers += 1
            self.events.append(f"run {action.id}")
            self.busiest = max(self.busiest, len(self.held) + self.workers)
        with self.lock:
            self.workers -= 1


def statuses(result: ApplyResult) -> dict[str, str]:
    return {o.action.id: f"{o.status}" + (f" {o.blocked_by}" if o.blocked_by else "") for o in result.outcomes}


def test_a_lane_action_s_dependents_start_only_after_it_is_done() -> None:
    lane = FakeLane()
    g = graph(["lane1", "w1", "lane2", "lane3", "lane4"], [("lane1", "w1"), ("w1", "lane2"), ("lane2", "lane3")])
    result = execute(g, lane.worker, parallelism=4, retry=POLICY, lane=lane)
    assert result.ok and len(result.done) == 5
    at = {event: i for i, event in enumerate(lane.events)}
    assert at["land lane1"] < at["run w1"] < at["start lane2"] < at["land lane2"] < at["start lane3"]


@pytest.mark.parametrize("parallelism", [1, 2, 3])
def test_parallelism_counts_lane_and_worker_actions_together(parallelism: int) -> None:
    lane = FakeLane()
    names = [f"lane{i}" for i in range(8)] + [f"w{i}" for i in range(8)]
    result = execute(graph(names), lane.worker, parallelism=parallelism, retry=POLICY, lane=lane)
    assert result.ok and len(result.done) == 16
    assert lane.busiest <= parallelism


def test_the_lane_fills_parallelism_but_never_more() -> None:
    lane = FakeLane()
    result = execute(graph([f"lane{i}" for i in range(8)]), lane.worker, parallelism=3, retry=POLICY, lane=lane)
    assert result.ok and lane.busiest == 3


def test_a_transient_lane_failure_gets_the_policy_s_remaining_attempts_on_a_worker() -> None:
    def again(action: Action) -> None:
        raise TransientStoreError("503 SlowDown", code="SlowDown")

    lane = FakeLane(lambda a: TransientStoreError("dropped", code="Network") if a.id == "lane-t" else None, again)
    g = graph(["lane-t", "lane-child", "lane-ok"], [("lane-t", "lane-child")])
    result = execute(g, lane.worker, parallelism=2, retry=POLICY, lane=lane)
    (failed,) = result.failed
    assert failed.action.id == "lane-t" and failed.code == "SlowDown"
    assert failed.attempts == POLICY.attempts and f"gave up after {POLICY.attempts} attempts" in failed.error
    assert lane.again_calls == Counter({"lane-t": POLICY.attempts - 1})
    assert statuses(result)["lane-child"] == f"{'skipped'} lane-t"
    assert statuses(result)["lane-ok"] == "done"


def test_a_transient_lane_failure_a_worker_then_finishes_is_done_and_its_dependents_go_on() -> None:
    lane = FakeLane(lambda a: TransientStoreError("dropped", code="Network") if a.id == "lane-t" else None)
    result = execute(graph(["lane-t", "lane-child"], [("lane-t", "lane-child")]), lane.worker, parallelism=2,
                     retry=POLICY, lane=lane)
    assert result.ok and statuses(result) == {"lane-t": "done", "lane-child": "done"}
    assert lane.again_calls == Counter({"lane-t": 1})
    assert next(o for o in result.outcomes if o.action.id == "lane-t").attempts == 2


def test_a_permanent_lane_failure_fails_and_skips_its_descendants_without_a_retry() -> None:
    def result_of(action: Action) -> Exception | None:
        return PermanentStoreError("precondition failed", code="PreconditionFailed") if action.id == "lane-p" else None

    lane = FakeLane(result_of)
    g = graph(["lane-p", "w-child", "lane-grandchild", "lane-other"], [("lane-p", "w-child"),
                                                                       ("w-child", "lane-grandchild")])
    result = execute(g, lane.worker, parallelism=2, retry=POLICY, lane=lane)
    assert [(o.action.id, o.code, o.attempts) for o in result.failed] == [("lane-p", "PreconditionFailed", 1)]
    assert statuses(result) == {
        "lane-p": FAILED.value, "w-child": "skipped lane-p", "lane-grandchild": "skipped lane-p",
        "lane-other": DONE.value,
    }
    assert not lane.again_calls and "run w-child" not in lane.events


def test_a_first_ctrl_c_finishes_the_lane_s_in_flight_actions_and_starts_no_more() -> None:
    lane = FakeLane()
    lane.on_wait = lambda n: signal.raise_signal(signal.SIGINT) if n == 1 else None
    names = [f"lane{i}" for i in range(6)]
    result = execute(graph(names), lane.worker, parallelism=2, retry=POLICY, lane=lane)
    assert result.interrupted
    started = [e.split()[1] for e in lane.events if e.startswith("start")]
    assert len(started) == 2
    assert statuses(result) == {n: "done" if n in started else f"skipped {NOT_STARTED}" for n in names}


def test_a_third_ctrl_c_still_settles_the_lane_s_sent_actions_by_their_answers() -> None:
    lane = FakeLane(lambda a: PermanentStoreError("refused", code="AccessDenied") if a.id == "lane0" else None)

    def three_interrupts(n: int) -> None:
        if n == 1:
            for _ in range(3):
                signal.raise_signal(signal.SIGINT)  # the third raises KeyboardInterrupt from the handler

    lane.on_wait = three_interrupts
    names = [f"lane{i}" for i in range(5)]
    result = execute(graph(names), lane.worker, parallelism=2, retry=POLICY, lane=lane)
    assert result.interrupted
    assert statuses(result) == {
        "lane0": "failed", "lane1": "done", **{n: f"skipped {NOT_STARTED}" for n in names[2:]},
    }
