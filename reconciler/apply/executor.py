"""Walk the plan's DAG with a thread pool.

A node starts when every node it depends on has succeeded. A failure skips
all of the node's descendants while independent branches go on. Transient
store errors are retried with exponential backoff and full jitter (stores/retry.py:
the one retry layer, shared with the callers that have no executor around them). The
executor knows nothing of S3 or files: the work is injected as `run`.

Ctrl-C, in the main thread: the first says at once how many actions are in flight and
starts no more (each running one is atomic on the server and finishes); the second
stops the in-flight transfers at their next read (`TransferStopped`: a multipart upload
is aborted by the store on the way out); a third gives up waiting (KeyboardInterrupt).
"""

from __future__ import annotations

import enum
import heapq
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import networkx as nx

from reconciler.apply.bulk import SmallUploads
from reconciler.apply.runner import ByteCounts, build_runner
from reconciler.errors import UserError
from reconciler.logs import get_logger, lines_held
from reconciler.model import Action, Desired, Plan
from reconciler.plan.graph import action_of, build_graph
from reconciler.stores.base import Store, StoreError, TransientStoreError
from reconciler.stores.retry import RetryPolicy, retrying


class OutcomeStatus(enum.StrEnum):
    """What became of one action; the values are the apply report's (`--format json`) and history's words."""

    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


DONE, FAILED, SKIPPED = OutcomeStatus.DONE, OutcomeStatus.FAILED, OutcomeStatus.SKIPPED


class TransferStopped(Exception):
    """Raised from a transfer's source read once a second interrupt asks in-flight transfers to stop."""


# Outcome.blocked_by of an action that never started because apply was interrupted, and of one stopped mid-way.
NOT_STARTED = "interrupted"
STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    status: OutcomeStatus
    error: str = ""
    code: str = ""
    attempts: int = 0
    seconds: float = 0.0
    blocked_by: str = ""  # for skipped: the failed action, NOT_STARTED or STOPPED


@dataclass(slots=True)
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False

    def _with(self, status: OutcomeStatus) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def done(self) -> list[Outcome]:
        return self._with(DONE)

    @property
    def failed(self) -> list[Outcome]:
        return self._with(FAILED)

    @property
    def skipped(self) -> list[Outcome]:
        return self._with(SKIPPED)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.interrupted


class Reporter(Protocol):
    def started(self, action: Action) -> None: ...

    def transferred(self, action: Action, nbytes: int) -> None:
        """`nbytes` more of a transfer's body were read from its source (called from worker threads)."""
        ...

    def retrying(self, action: Action, attempt: int, delay: float, error: StoreError) -> None: ...

    def finished(self, outcome: Outcome) -> None: ...


class NullReporter:
    def started(self, action: Action) -> None:
        pass

    def transferred(self, action: Action, nbytes: int) -> None:
        pass

    def retrying(self, action: Action, attempt: int, delay: float, error: StoreError) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        pass


def run_with_retries(
    action: Action,
    run: Callable[[Action], None],
    retry: RetryPolicy,
    reporter: Reporter,
    first: TransientStoreError | None = None,
) -> Outcome:
    """`first`: attempt 1 was made elsewhere (the lane) and failed so; the policy's backoff and attempts go on."""
    start = time.monotonic()
    attempts = 0 if first is None else 1

    def attempt() -> None:
        nonlocal attempts
        attempts += 1
        run(action)

    try:
        retrying(attempt, retry, lambda n, delay, exc: reporter.retrying(action, n, delay, exc), first=first)
    except Exception as exc:  # a bug or an OS error too: fail this action, keep the rest going
        return failed(action, exc, attempts, time.monotonic() - start)
    return Outcome(action, DONE, attempts=attempts, seconds=time.monotonic() - start)


def failed(action: Action, exc: Exception, attempts: int, seconds: float) -> Outcome:
    """The outcome of an action whose last attempt raised `exc`."""
    if isinstance(exc, TransferStopped):
        return Outcome(action, SKIPPED, attempts=attempts, seconds=seconds, blocked_by=STOPPED)
    if isinstance(exc, TransientStoreError):
        return Outcome(action, FAILED, f"{exc} (gave up after {attempts} attempts)", exc.code, attempts, seconds)
    if isinstance(exc, StoreError):
        return Outcome(action, FAILED, str(exc), exc.code, attempts, seconds)
    return Outcome(action, FAILED, f"{type(exc).__name__}: {exc}", "", attempts, seconds)


def lane_outcome(action: Action, error: Exception | None, seconds: float) -> Outcome:
    """The outcome of a lane's one attempt at `action`."""
    return Outcome(action, DONE, attempts=1, seconds=seconds) if error is None else failed(action, error, 1, seconds)


class Lane(Protocol):
    """Actions the executor's own thread carries out without a worker each (apply/bulk.py's small uploads).

    `start` never blocks and never raises: a failure comes back from `wait`. `wait` blocks until some of the
    lane's actions finish or `wake` is called (from a worker thread or a signal handler), and may return none.
    """

    def takes(self, action: Action) -> bool: ...

    def start(self, action: Action) -> None: ...

    def in_flight(self) -> int: ...

    def wait(self) -> list[tuple[Action, Exception | None, float]]: ...

    def wake(self) -> None: ...

    def again(self, action: Action) -> None:
        """Run `action` on a worker, after the lane met a failure a retry may cure."""
        ...


class _Interrupts:
    """Ctrl-C as events the main loop acts on, instead of a KeyboardInterrupt raised wherever it happens to be.

    The handler only counts and wakes the loop (SimpleQueue.put is safe in a signal handler): printing from it
    could re-enter a write the main thread was in the middle of.
    """

    def __init__(self, wake: Callable[[], None]) -> None:
        self.count = 0
        self.acted = 0
        self._wake = wake
        self._previous: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count > 2:
            raise KeyboardInterrupt
        self._wake()

    def __enter__(self) -> _Interrupts:
        # Signal handlers can only be set from the main thread (`pixel serve` runs applies on others).
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


def execute(
    graph: nx.DiGraph[str],
    run: Callable[[Action], None],
    *,
    parallelism: int = 16,
    retry: RetryPolicy | None = None,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
    abort: threading.Event | None = None,
    lane: Lane | None = None,
) -> ApplyResult:
    """`stop` set: start no more actions. `abort` is set by a second Ctrl-C: `run` should then stop its
    transfers (LocalExecutor raises TransferStopped from their reads). The actions `lane` takes run on this
    thread, within the same `parallelism`."""
    retry = retry or RetryPolicy()
    reporter = reporter or NullReporter()
    stop = stop or threading.Event()
    abort = abort or threading.Event()
    log = get_logger("pixel.apply")
    waiting = {node: graph.in_degree(node) for node in graph.nodes}
    result = ApplyResult()
    settled: set[str] = set()

    def settle(outcome: Outcome) -> None:
        settled.add(outcome.action.id)
        result.outcomes.append(outcome)
        reporter.finished(outcome)

    # Ready actions start largest first (then by id, so a run is repeatable): the longest transfers begin at
    # once and overlap the many short ones, instead of whichever of them sorts last by key running alone at
    # the end with a core idle (the longest-processing-time-first rule). Only ready actions are ordered, so
    # the plan's dependency order holds; a big upload's parts stay bounded by the store's part buffers.
    ready: list[tuple[int, str]] = []

    def make_ready(node: str) -> None:
        heapq.heappush(ready, (-action_of(graph, node).size, node))

    for node, n in waiting.items():
        if n == 0:
            make_ready(node)
    running: dict[Future[Outcome], str] = {}
    # Workers hand their finished futures to the main thread here: one put and one get per action, where
    # wait() over every running future cost the main thread a waiter on each of them per completion.
    # None is the interrupt handler waking the loop.
    done: queue.SimpleQueue[Future[Outcome] | None] = queue.SimpleQueue()

    def finished(future: Future[Outcome]) -> None:
        done.put(future)
        if lane is not None:
            lane.wake()

    def in_flight() -> int:
        return len(running) + (lane.in_flight() if lane is not None else 0)

    def submit(
        pool: ThreadPoolExecutor,
        action: Action,
        work: Callable[[Action], None],
        first: TransientStoreError | None = None,
    ) -> None:
        future = pool.submit(run_with_retries, action, work, retry, reporter, first)
        running[future] = action.id
        future.add_done_callback(finished)

    def submit_ready(pool: ThreadPoolExecutor) -> None:
        while ready and in_flight() < parallelism and not stop.is_set():
            _, node = heapq.heappop(ready)
            action = action_of(graph, node)
            reporter.started(action)
            if lane is not None and lane.takes(action):
                lane.start(action)
            else:
                submit(pool, action, run)

    def landed(pool: ThreadPoolExecutor, action: Action, error: Exception | None, seconds: float) -> None:
        if isinstance(error, TransientStoreError) and lane is not None and not stop.is_set():
            submit(pool, action, lane.again, error)  # the policy's backoff and attempts left, on a worker
            return
        conclude(action.id, lane_outcome(action, error, seconds))

    def take(future: Future[Outcome]) -> None:
        conclude(running.pop(future), future.result())

    def conclude(node: str, outcome: Outcome) -> None:
        settle(outcome)
        if outcome.status == DONE:
            for child in sorted(graph.successors(node)):
                waiting[child] -= 1
                if waiting[child] == 0 and child not in settled:
                    make_ready(child)
        else:
            # What waited on a transfer the second Ctrl-C stopped was kept from starting by the interrupt.
            cause = NOT_STARTED if outcome.status == SKIPPED and outcome.blocked_by == STOPPED else node
            for child in sorted(nx.descendants(graph, node)):
                if child not in settled:
                    settle(Outcome(action_of(graph, child), SKIPPED, blocked_by=cause))

    def interrupted(first: bool) -> None:
        if first:
            stop.set()
            result.interrupted = True
            log.warning(
                f"interrupt received: finishing {in_flight():,} in-flight actions, starting no more "
                "(Ctrl-C again stops them)"
            )
        else:
            abort.set()
            log.warning(
                f"second interrupt: stopping {in_flight():,} in-flight actions; their multipart uploads are aborted"
            )

    def woken() -> None:
        done.put(None)
        if lane is not None:
            lane.wake()

    pool = ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="pixel-apply")
    with pool, _Interrupts(woken) as ctrl_c:
        try:
            with lines_held():
                submit_ready(pool)
            while in_flight():
                came: list[tuple[Action, Exception | None, float]] = []
                if lane is not None and lane.in_flight():
                    came = lane.wait()  # returns on a worker's finish too (`finished` wakes it)
                    futures: list[Future[Outcome] | None] = []
                else:
                    futures = [done.get()]
                while not done.empty():
                    futures.append(done.get())
                # The pass's log lines (two per action under JSON logs) go out in one write, not one each.
                with lines_held():
                    for action, error, seconds in came:
                        landed(pool, action, error, seconds)
                    for future in futures:
                        if future is not None:
                            take(future)
                    # After the finished ones are settled, so "N in flight" counts only what still runs.
                    while ctrl_c.acted < min(ctrl_c.count, 2):
                        ctrl_c.acted += 1
                        interrupted(first=ctrl_c.acted == 1)
                    submit_ready(pool)
        except KeyboardInterrupt:
            # SIGTERM (session.py), a third Ctrl-C, or one from outside the main thread: let running
            # transfers finish (each is atomic on the server), start nothing new.
            if not result.interrupted:
                interrupted(first=True)
            for future in list(running):
                if not future.cancel():
                    settle(future.result())
                running.pop(future, None)
            while lane is not None and lane.in_flight():
                for action, error, seconds in lane.wait():  # each small PUT is atomic: its answer is near
                    settle(lane_outcome(action, error, seconds))
    if stop.is_set():
        result.interrupted = True
    for node in sorted(graph.nodes):
        if node not in settled:
            settle(Outcome(action_of(graph, node), SKIPPED, blocked_by=NOT_STARTED))
    return result


class PlanExecutor(Protocol):
    """Carries out a whole plan: on this machine (LocalExecutor) or on a Dask cluster (dask_executor)."""

    def check(self, plan: Plan, desired: Desired) -> None:
        """Raise UserError when this executor cannot run the plan; called before anything is touched."""
        ...

    def run(
        self,
        plan: Plan,
        desired: Desired,
        stores: Mapping[str, Store],
        *,
        reporter: Reporter,
        stop: threading.Event,
    ) -> tuple[ApplyResult, ByteCounts]: ...


@dataclass(frozen=True, slots=True)
class LocalExecutor:
    """The default: this process's thread pool walks the DAG action by action."""

    parallelism: int = 16
    retry: RetryPolicy | None = None
    # Small uploads sent from the executor's own thread (apply/bulk.py); False: every action on a worker.
    bulk: bool = True
    # The graph `check` built, by plan, for `run` to walk: 10,005 actions took 20-50 ms to build, twice, before
    # the first one could start. The plan is held beside its graph so its id cannot name another plan.
    _checked: dict[int, tuple[Plan, nx.DiGraph[str]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def check(self, plan: Plan, desired: Desired) -> None:
        try:
            self._checked[id(plan)] = (plan, build_graph(plan))
        except ValueError as exc:
            raise UserError(f"the plan cannot be applied: {exc}") from exc

    def _graph(self, plan: Plan) -> nx.DiGraph[str]:
        checked = self._checked.pop(id(plan), None)
        return checked[1] if checked is not None and checked[0] is plan else build_graph(plan)

    def run(
        self,
        plan: Plan,
        desired: Desired,
        stores: Mapping[str, Store],
        *,
        reporter: Reporter,
        stop: threading.Event,
    ) -> tuple[ApplyResult, ByteCounts]:
        abort = threading.Event()

        def on_bytes(action: Action, nbytes: int) -> None:
            if abort.is_set():
                raise TransferStopped(f"{action.kind.value} {action.target} stopped by a second interrupt")
            reporter.transferred(action, nbytes)

        runner = build_runner(desired, stores, on_bytes=on_bytes)
        lane = SmallUploads(runner, stores, connections=self.parallelism) if self.bulk else None
        try:
            result = execute(
                self._graph(plan),
                runner,
                parallelism=self.parallelism,
                retry=self.retry,
                reporter=reporter,
                stop=stop,
                abort=abort,
                lane=lane,
            )
        finally:
            if lane is not None:
                lane.close()
        return result, runner
