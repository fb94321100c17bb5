"""`pixel apply --executor dask`: the plan's batches as a Dask graph on an existing cluster.

The driver (this process) keeps everything that must be in one place: the bucket
lock (held and renewed by the apply session around this), the delete guards
(checked before the plan gets here), the report and the progress. Workers get
batches (reconciler/apply/batching.py) whose dependencies are the action DAG's
edges, run them with the local executor code (dask_worker.py) and return one
outcome per action.

The driver sends a batch only once the results of every batch it waits for are
in its hands, and sends it with plain values (which earlier actions failed),
never with another task's future: a result is never fetched from a worker that
may be gone. A batch whose worker dies under it, whose result is lost before
the driver fetched it, or which the scheduler drops, is sent again under a new
key (batches are idempotent: the runner counts an action whose effect is
already in place as done) until it returns its outcomes, fails for a reason of
its own, or has been lost MAX_LOSSES times.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.apply.batching import DEFAULT_MAX_ACTIONS, DEFAULT_MAX_BYTES, Batches, make_batches
from reconciler.apply.dask_worker import (
    BatchContext,
    BatchResult,
    BatchWork,
    blocked_actions,
    lock_ids,
    preflight,
    run_batch,
)
from reconciler.apply.executor import FAILED, SKIPPED, ApplyResult, Outcome, Reporter
from reconciler.apply.runner import ByteCounts, ByteTotals
from reconciler.errors import UserError
from reconciler.logs import get_logger
from reconciler.model import Action, ActionKind, Desired, LocalStoreSpec, Plan, S3StoreSpec
from reconciler.stores.base import Store, TransientStoreError

INSTALL_HINT = "pip install 'pixel-reconciler[dask]'"
# A batch lost this many times (its worker killed under it, its result gone before the driver fetched it) is
# reported failed: a cluster that loses every worker a batch lands on will not finish it by being asked again.
MAX_LOSSES = 5


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise UserError(f"--executor dask needs Dask distributed here and on the workers: {INSTALL_HINT}") from exc
    return distributed


# Generated files are rendered from the whole Desired; the compile reads its final_dataset section.
_NEEDS_DESIRED = frozenset({ActionKind.WRITE_MANIFEST, ActionKind.COMPILE})


def needed_stores(plan: Plan, desired: Desired) -> set[str]:
    """Every store the plan's actions read or write (generated files read them all)."""
    names: set[str] = set()
    for action in plan.actions:
        names.add(action.target.store)
        if action.source is not None:
            names.add(action.source.store)
        if action.kind is ActionKind.WRITE_MANIFEST:
            names.update(desired.stores)
        if action.kind is ActionKind.COMPILE and desired.final is not None:
            # The compile stages shards in its workdir and keeps the manifest's local copy.
            names.update({desired.final.workdir.store, desired.final.manifest_local.store})
    return names


def local_roots(plan: Plan, desired: Desired) -> dict[str, str]:
    """Root -> store of every local store the plan's actions read or write."""
    out = {}
    for name in sorted(needed_stores(plan, desired)):
        spec = desired.stores.get(name)
        if isinstance(spec, LocalStoreSpec):
            out[spec.root] = name
    return out


def s3_stores(plan: Plan, desired: Desired) -> tuple[S3StoreSpec, ...]:
    """The S3 stores the plan's actions read or write: every worker must reach them with its own credentials."""
    specs = (desired.stores.get(name) for name in sorted(needed_stores(plan, desired)))
    return tuple(spec for spec in specs if isinstance(spec, S3StoreSpec))


def missing_roots(seen: Mapping[str, Mapping[str, bool]], roots: Mapping[str, str]) -> list[str]:
    """One line per worker that does not see a root the plan needs."""
    lines = []
    for worker, visible in sorted(seen.items()):
        for root, store in roots.items():
            if not visible.get(root, False):
                lines.append(f"worker {worker} does not see {root} (local store {store!r})")
    return lines


def unusable_stores(seen: Mapping[str, Mapping[str, str]], specs: tuple[S3StoreSpec, ...]) -> list[str]:
    """One line per worker and S3 store it cannot use, with the store's own reason (no credentials, denied...)."""
    lines = []
    for worker, problems in sorted(seen.items()):
        for spec in specs:
            if why := problems.get(spec.name, "not checked on this worker"):
                lines.append(f"worker {worker} cannot use store {spec.name!r} (bucket {spec.bucket}): {why}")
    return lines


@dataclass
class DaskExecutor:
    scheduler: str
    parallelism: int = 16  # actions at once inside one batch, on one worker thread
    max_actions: int = DEFAULT_MAX_ACTIONS
    max_bytes: int = DEFAULT_MAX_BYTES
    connect_timeout: float = 15.0
    _client: Any = field(default=None, repr=False)
    _batches: Batches | None = field(default=None, repr=False)

    def check(self, plan: Plan, desired: Desired) -> None:
        """Connect, cut the plan, and make sure every worker sees the local roots and can use the S3 stores the
        plan needs: refuse before anything runs."""
        distributed = _distributed()
        try:
            self._batches = make_batches(plan, max_actions=self.max_actions, max_bytes=self.max_bytes)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        try:
            self._client = distributed.Client(self.scheduler, timeout=self.connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}") from exc
        try:
            workers = self._client.scheduler_info(n_workers=-1)["workers"]
            if not workers:
                raise UserError(f"the Dask scheduler at {self.scheduler} has no workers; nothing was touched")
            roots, s3 = local_roots(plan, desired), s3_stores(plan, desired)
            if roots or s3:
                # One check per worker, before any action: a worker without the shared filesystem or without
                # credentials would otherwise fail every action it is given, one error each.
                seen = self._client.run(preflight, tuple(roots), s3)
                problems = missing_roots({w: r["roots"] for w, r in seen.items()}, roots)
                problems += unusable_stores({w: r["stores"] for w, r in seen.items()}, s3)
                if problems:
                    raise UserError(
                        "every worker needs the local roots these actions read or write (a shared filesystem "
                        "mounted at the same path) and credentials of its own for their S3 stores; "
                        "nothing was touched:\n  " + "\n  ".join(problems)
                    )
        except BaseException:
            self.close()
            raise
        get_logger("pixel.apply").info(
            "applying on a Dask cluster",
            scheduler=self.scheduler,
            workers=len(workers),
            batches=len(self._batches.batches),
            actions=len(plan.actions),
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def run(
        self,
        plan: Plan,
        desired: Desired,
        stores: Mapping[str, Store],
        *,
        reporter: Reporter,
        stop: threading.Event,
    ) -> tuple[ApplyResult, ByteCounts]:
        if self._client is None or self._batches is None:
            self.check(plan, desired)
        assert self._batches is not None
        try:
            return _Drive(self._client, self._batches, plan, desired, stores, reporter, stop, self.parallelism).run()
        finally:
            self.close()


class _Drive:
    """One apply on the cluster: submit every batch, then settle results as they come back."""

    def __init__(
        self,
        client: Any,
        batches: Batches,
        plan: Plan,
        desired: Desired,
        stores: Mapping[str, Store],
        reporter: Reporter,
        stop: threading.Event,
        parallelism: int,
    ) -> None:
        self.client = client
        self.batches = batches
        self.reporter = reporter
        self.stop = stop
        self.actions = {a.id: a for a in plan.actions}
        token = uuid.uuid4().hex[:12]
        self.token = token
        self.ctx = BatchContext(
            stores=tuple(desired.stores[name] for name in sorted(desired.stores)),
            apply_ids=lock_ids(stores),
            parallelism=parallelism,
            stop_event=f"pixel-stop-{token}",
            progress_topic=f"pixel-progress-{token}",
        )
        self.ctx_with_desired = replace(self.ctx, desired=desired)
        self.result = ApplyResult()
        self.totals = ByteTotals()
        self.started: set[str] = set()
        self.settled: set[str] = set()
        self.results: dict[int, BatchResult] = {}
        self.failed_batches: dict[int, str] = {}
        self.losses: Counter[int] = Counter()
        self.log = get_logger("pixel.apply")
        self._lock = threading.Lock()  # _live and _index: the stop watcher cancels what is live
        self._live: dict[str, Any] = {}  # key -> the future of a batch attempt not yet collected
        self._index: dict[str, int] = {}  # key -> its batch
        self._done = threading.Event()

    def _context(self, actions: tuple[Action, ...]) -> BatchContext:
        return self.ctx_with_desired if any(a.kind in _NEEDS_DESIRED for a in actions) else self.ctx

    def _on_event(self, event: tuple[float, Mapping[str, Any]]) -> None:
        """Progress from the workers, on the client's thread: started actions, bytes read, retries."""
        _, message = event
        for action_id in message.get("started", ()):
            with self._lock:
                fresh = action_id not in self.started
                self.started.add(action_id)
            if fresh and action_id in self.actions:
                self.reporter.started(self.actions[action_id])
        for action_id, nbytes in message.get("bytes", {}).items():
            if action_id in self.actions:
                self.reporter.transferred(self.actions[action_id], int(nbytes))
        for action_id, attempt, delay, code, error in message.get("retries", ()):
            if action_id in self.actions:
                self.reporter.retrying(self.actions[action_id], attempt, delay, TransientStoreError(error, code=code))

    def _settle(self, outcome: Outcome) -> None:
        if outcome.action.id in self.settled:
            return
        self.settled.add(outcome.action.id)
        self.result.outcomes.append(outcome)
        self.reporter.finished(outcome)

    def _take(self, result: BatchResult) -> None:
        self.totals.add(result)
        for o in result.outcomes:
            self._settle(Outcome(self.actions[o.id], o.status, o.error, o.code, o.attempts, o.seconds, o.blocked_by))

    def _halt(self) -> None:
        """Lock lost or Ctrl-C: running batches start no new action, queued ones never start, none is sent again."""
        distributed = _distributed()
        distributed.Event(self.ctx.stop_event, client=self.client).set()
        with self._lock:
            live = [f for f in self._live.values() if not f.done()]
        self.client.cancel(live)

    def _submit(self, index: int, completed: Any) -> None:
        """Send batch `index` (again, after a loss): its upstream batches' results are all in by now."""
        batch = self.batches.batches[index]
        work = BatchWork(
            batch.index,
            batch.actions,
            tuple((a.id, self.batches.depends_on[a.id]) for a in batch.actions if a.id in self.batches.depends_on),
        )
        blocked = blocked_actions(work, tuple(self.results[i] for i in batch.after))
        work = replace(work, blocked=tuple(sorted(blocked.items())))
        attempt = self.losses[index]
        # A fresh key per attempt: the scheduler may still hold the lost one, half forgotten.
        key = f"pixel-batch-{self.token}-{batch.index:06d}" + (f"-again{attempt}" if attempt else "")
        # retries=0: a batch is safe to run again (its actions are idempotent) but never worth running twice at
        # once; the driver sends it again itself, once it knows the first attempt is over.
        future = self.client.submit(run_batch, self._context(batch.actions), work, key=key, retries=0)
        with self._lock:
            self._live[key] = future
            self._index[key] = index
        completed.add(future)

    def _collect(self, future: Any) -> BatchResult | str | None:
        """The batch's result; the error that failed it; or None when the attempt was lost and must be sent again.

        Lost: its worker died under it (KilledWorker), or after it finished and before the driver had its result
        ("Couldn't gather keys"), or the scheduler dropped it (cancelled without a stop, reset to pending).
        """
        distributed = _distributed()
        status = future.status
        if status == "finished":
            try:
                result = future.result()
            except Exception as exc:  # gathering failed: the result went down with its worker
                self.log.warning("a batch's result was lost with its worker; sending it again", key=future.key,
                                 error=repr(exc))
                return None
            if isinstance(result, BatchResult):
                return result
            return f"the batch returned {type(result).__name__}, not its outcomes"
        if status == "error":
            error = future.exception()
            if isinstance(error, distributed.KilledWorker):
                self.log.warning("a batch's worker died under it; sending it again", key=future.key)
                return None
            return repr(error)
        self.log.warning("a batch was lost by the cluster; sending it again", key=future.key, status=str(status))
        return None

    def run(self) -> tuple[ApplyResult, ByteTotals]:
        distributed = _distributed()
        self.client.subscribe_topic(self.ctx.progress_topic, self._on_event)
        waiting = {b.index: set(b.after) for b in self.batches.batches}
        dependents: dict[int, list[int]] = {}
        for batch in self.batches.batches:
            for before in batch.after:
                dependents.setdefault(before, []).append(batch.index)
        completed = distributed.as_completed([], loop=self.client.loop)
        for batch in self.batches.batches:
            if not batch.after:
                self._submit(batch.index, completed)
        watcher = threading.Thread(target=self._watch_lost, daemon=True)
        watcher.start()
        try:
            for future in completed:
                with self._lock:
                    self._live.pop(future.key, None)
                    index = self._index.pop(future.key)
                got = self._collect(future)
                future.release()
                if self.stop.is_set():
                    if isinstance(got, BatchResult):
                        self._take(got)
                    continue  # stopping: nothing is sent, again or anew
                if got is None:
                    self.losses[index] += 1
                    if self.losses[index] > MAX_LOSSES:
                        self.failed_batches[index] = f"lost with its worker {self.losses[index]} times"
                    else:
                        self._submit(index, completed)
                    continue
                if isinstance(got, str):
                    self.failed_batches[index] = got  # a real failure: the batches after it are never sent
                    continue
                self.results[index] = got
                self._take(got)
                for later in dependents.get(index, ()):
                    waiting[later].discard(index)
                    if not waiting[later]:
                        self._submit(later, completed)
        except KeyboardInterrupt:
            self.stop.set()
            self._halt()
            self.result.interrupted = True
        finally:
            self._done.set()
            self.client.unsubscribe_topic(self.ctx.progress_topic)
        self._settle_erred(self.failed_batches)
        if self.stop.is_set():
            self.result.interrupted = True
        for action_id in sorted(self.actions):
            if action_id not in self.settled:
                self._settle(Outcome(self.actions[action_id], SKIPPED, blocked_by="interrupted"))
        return self.result, self.totals

    def _watch_lost(self) -> None:
        while not self._done.is_set():
            if self.stop.wait(0.5):
                self._halt()
                return

    def _settle_erred(self, failed_batches: Mapping[int, str]) -> None:
        """A batch that failed as a whole (or was lost too often): its actions failed; batches after it, skipped."""
        root: dict[int, str] = {}
        for batch in self.batches.batches:
            upstream = [root[i] for i in batch.after if i in root]
            if batch.index not in failed_batches:
                if upstream:  # never sent: something it waits for failed
                    root[batch.index] = upstream[0]
                    for a in batch.actions:
                        self._settle(Outcome(a, SKIPPED, blocked_by=upstream[0]))
                continue
            root[batch.index] = batch.actions[0].id
            error = f"the Dask cluster could not run this action's batch: {failed_batches[batch.index]}"
            for a in batch.actions:
                self._settle(Outcome(a, FAILED, error, "DaskError", 1))
