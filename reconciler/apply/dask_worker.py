"""What runs on a Dask worker: one batch of actions, with the same runner and executor as a local apply.

Nothing here holds a credential. A batch carries store specs (bucket, endpoint,
region, profile name, local root); the worker builds its stores from them once
per process and finds credentials in its own environment, like any boto3 program.
`distributed` is imported only inside the functions that need a worker, so this
module loads (and its types are checked) without it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.apply.bulk import SmallUploads
from reconciler.apply.executor import DONE, FAILED, SKIPPED, Outcome, OutcomeStatus, execute
from reconciler.apply.runner import build_runner
from reconciler.model import Action, Desired, Plan, S3StoreSpec, StoreSpec
from reconciler.plan.graph import build_graph
from reconciler.stores.base import ChecksReachable, JournalsUploads, Store, StoreError
from reconciler.stores.factory import build_store

# How often a worker forwards progress (bytes read, actions started, retries) and checks for a stop.
FLUSH_S = 0.25
STOP_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What every batch of one apply shares: secret-free store specs and the apply's names on the cluster."""

    stores: tuple[StoreSpec, ...]
    apply_ids: tuple[tuple[str, str], ...]  # S3 store -> the lock id its multipart records name
    parallelism: int
    stop_event: str  # a distributed Event: once set, no batch starts another action
    progress_topic: str  # worker events -> the driver's reporter
    desired: Desired | None = None  # only for batches that write generated files or compile


@dataclass(frozen=True, slots=True)
class BatchWork:
    index: int
    actions: tuple[Action, ...]
    depends_on: tuple[tuple[str, tuple[str, ...]], ...]  # action id -> the actions (in earlier batches) it waits for
    # Action id -> the failed action that blocks it, worked out by the driver from the earlier batches' results
    # (`blocked_actions`): plain values, never another task's result, which a lost worker may have taken along.
    blocked: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Settled:
    """An Outcome without its Action: the driver holds the actions, the wire carries only this."""

    id: str
    status: OutcomeStatus
    error: str = ""
    code: str = ""
    attempts: int = 0
    seconds: float = 0.0
    blocked_by: str = ""


@dataclass(frozen=True, slots=True)
class BatchResult:
    index: int
    worker: str
    outcomes: tuple[Settled, ...]
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
    bytes_copied: int = 0

    def not_done(self) -> dict[str, str]:
        """Action id -> the failure that stopped it (itself when it failed; what blocked it when skipped)."""
        return {
            o.id: (o.id if o.status == FAILED else o.blocked_by) for o in self.outcomes if o.status != DONE
        }


_stores_lock = threading.Lock()
_stores: dict[tuple[tuple[StoreSpec, ...], int], dict[str, Store]] = {}


def worker_stores(specs: tuple[StoreSpec, ...], parallelism: int) -> dict[str, Store]:
    """This process's stores for these specs, built once: a boto3 client per batch costs more than a small batch."""
    key = (specs, parallelism)
    with _stores_lock:
        stores = _stores.get(key)
        if stores is None:
            stores = {spec.name: build_store(spec, parallelism=parallelism) for spec in specs}
            _stores[key] = stores
        return stores


def _is_dir(path: str) -> bool:
    return os.path.isdir(path)


def _unusable(spec: S3StoreSpec) -> str:
    """Why this process cannot use the S3 store (credentials, bucket, endpoint), or "" when it can."""
    try:
        store = build_store(spec, parallelism=1)
        if isinstance(store, ChecksReachable):
            store.check_bucket()
    except StoreError as exc:
        return str(exc)
    return ""


def preflight(roots: tuple[str, ...], s3: tuple[S3StoreSpec, ...]) -> dict[str, dict[str, Any]]:
    """Run on each worker before any action: which of the plan's local roots it sees, and which of its S3 stores
    it cannot use ("" when it can), with the credentials found in its own environment."""
    return {"roots": {root: _is_dir(root) for root in roots}, "stores": {spec.name: _unusable(spec) for spec in s3}}


@dataclass
class _ForwardingReporter:
    """The executor's Reporter on a worker: events are gathered and sent to the driver a few times a second."""

    send: Any  # Worker.log_event bound to the topic; thread-safe
    topic: str
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _started: list[str] = field(default_factory=list)
    _bytes: dict[str, int] = field(default_factory=dict)
    _retries: list[list[Any]] = field(default_factory=list)
    _sent: float = 0.0

    def started(self, action: Action) -> None:
        with self._lock:
            self._started.append(action.id)
        self._maybe_flush()

    def transferred(self, action: Action, nbytes: int) -> None:
        with self._lock:
            self._bytes[action.id] = self._bytes.get(action.id, 0) + nbytes
        self._maybe_flush()

    def retrying(self, action: Action, attempt: int, delay: float, error: StoreError) -> None:
        with self._lock:
            self._retries.append([action.id, attempt, delay, error.code, str(error)])
        self._maybe_flush()

    def finished(self, outcome: Outcome) -> None:
        self._maybe_flush()  # the outcome itself travels in the batch's result, once, whatever reruns happen

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._sent >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            self._sent = time.monotonic()
            if not (self._started or self._bytes or self._retries):
                return
            message = {"started": self._started, "bytes": self._bytes, "retries": self._retries}
            self._started, self._bytes, self._retries = [], {}, []
        self.send(self.topic, message)


def _watch_stop(event: Any, stop: threading.Event, finished: threading.Event) -> None:
    while not finished.wait(STOP_POLL_S):
        try:
            if event.is_set():
                stop.set()
                return
        except Exception:  # the scheduler is unreachable: the driver is gone, stop starting work
            stop.set()
            return


def blocked_actions(work: BatchWork, upstream: tuple[BatchResult, ...]) -> dict[str, str]:
    """Actions of this batch that must not run: id -> the failed action that blocks them."""
    not_done: dict[str, str] = {}
    for result in upstream:
        not_done.update(result.not_done())
    blocked: dict[str, str] = {}
    for action_id, deps in work.depends_on:
        for dep in deps:
            if dep in not_done:
                blocked[action_id] = not_done[dep]
                break
    return blocked


def run_batch(ctx: BatchContext, work: BatchWork) -> BatchResult:
    """The Dask task: run the batch's actions that nothing failed before, through the local executor code."""
    import distributed

    dask: Any = distributed  # untyped: one Any at the boundary
    worker = dask.get_worker()
    blocked = dict(work.blocked)
    outcomes = [Settled(a.id, SKIPPED, blocked_by=blocked[a.id]) for a in work.actions if a.id in blocked]
    runnable = tuple(a for a in work.actions if a.id not in blocked)

    ids = dict(ctx.apply_ids)
    # The cached stores bound, for this batch, to the driver's apply: the records name it.
    stores = {
        name: store.for_apply(ids[name]) if isinstance(store, JournalsUploads) and name in ids else store
        for name, store in worker_stores(ctx.stores, ctx.parallelism).items()
    }
    reporter = _ForwardingReporter(worker.log_event, ctx.progress_topic)
    runner = build_runner(ctx.desired or Desired(stores={}, mappings=()), stores, on_bytes=reporter.transferred)

    stop, finished = threading.Event(), threading.Event()
    stop_event = dask.Event(ctx.stop_event)
    if stop_event.is_set():
        stop.set()
    watcher = threading.Thread(target=_watch_stop, args=(stop_event, stop, finished), daemon=True)
    watcher.start()
    # Small uploads from this thread, as the local executor sends them; a batch may run again after its worker
    # died, so a refusal whose effect is already in place counts as done there too (`idempotent`).
    lane = SmallUploads(runner, stores, connections=ctx.parallelism, idempotent=True)
    try:
        # The batch's actions never depend on each other (batching.py): a graph without edges.
        graph = build_graph(Plan(actions=runnable, edges=()))
        result = execute(
            graph, runner.run_idempotent, parallelism=ctx.parallelism, reporter=reporter, stop=stop, lane=lane
        )
    finally:
        lane.close()
        finished.set()
        reporter.flush()
    outcomes.extend(
        Settled(o.action.id, o.status, o.error, o.code, o.attempts, o.seconds, o.blocked_by) for o in result.outcomes
    )
    return BatchResult(
        work.index,
        worker.address,
        tuple(outcomes),
        runner.bytes_uploaded,
        runner.bytes_downloaded,
        runner.bytes_copied,
    )


def lock_ids(stores: Mapping[str, Store]) -> tuple[tuple[str, str], ...]:
    """The driver's lock ids per S3 store, for the upload records written on the workers."""
    held = ((name, store.apply_id) for name, store in stores.items() if isinstance(store, JournalsUploads))
    return tuple(sorted((name, lock_id) for name, lock_id in held if lock_id))
