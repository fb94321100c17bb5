"""Running a plan safely: lock every bucket it touches, clear what a killed apply left, then execute.

Both `pixel apply` (plan then apply) and `pixel apply FILE` (a saved plan)
come through here, so both hold the lock, both abort stale multipart uploads
and both stop starting actions when the lock is lost.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.apply.executor import ApplyResult, Reporter, execute
from reconciler.apply.lock import DEFAULT_LEASE_SECONDS, StoreLock, hold_all
from reconciler.apply.runner import ActionRunner
from reconciler.errors import UserError
from reconciler.logs import get_logger
from reconciler.manifests.writer import ManifestWriter
from reconciler.model import Desired, Plan, S3StoreSpec
from reconciler.plan.graph import build_graph
from reconciler.stores.base import Store, StoreError
from reconciler.stores.s3 import S3Store
from reconciler.workflow import Workspace


@dataclasses.dataclass(frozen=True, slots=True)
class LockOptions:
    timeout: float = 0.0  # seconds to wait for another apply's lock; 0 fails fast
    lease_seconds: float = DEFAULT_LEASE_SECONDS


def managed_s3_stores(desired: Desired) -> list[str]:
    """S3 stores any mapping uses, sorted: every apply locks them in this order, so two never deadlock."""
    names = {m.s3_store for m in desired.mappings}
    return sorted(n for n in names if isinstance(desired.stores.get(n), S3StoreSpec))


def store_locks(desired: Desired, stores: dict[str, Store], options: LockOptions) -> list[StoreLock]:
    locks = []
    for name in managed_s3_stores(desired):
        spec = desired.stores[name]
        assert isinstance(spec, S3StoreSpec)
        locks.append(
            StoreLock(
                stores[name],
                spec.lock_key,
                label=f'bucket "{spec.bucket}" (store {name!r})',
                lease_seconds=options.lease_seconds,
            )
        )
    return locks


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """CI cancels a job with SIGTERM: treat it like Ctrl-C so running transfers settle and the lock is released."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def locked(ws: Workspace, options: LockOptions) -> Iterator[threading.Event]:
    """Hold the apply lock on every managed bucket; the event is set if any lock is lost."""
    with _sigterm_as_interrupt(), hold_all(store_locks(ws.desired, ws.stores, options), options.timeout) as lost:
        yield lost


def abort_leftover_uploads(ws: Workspace) -> int:
    """Abort multipart uploads under the managed prefixes: with the lock held, only a killed apply leaves them."""
    log = get_logger("pixel.apply")
    count = 0
    for mapping in ws.desired.mappings:
        store = ws.stores.get(mapping.s3_store)
        if not isinstance(store, S3Store):
            continue
        try:
            keys = store.abort_incomplete_uploads(mapping.s3_prefix)
        except StoreError as exc:
            # Not fatal: the leftovers only cost storage, and the plan's uploads start afresh anyway.
            log.warning("could not list unfinished uploads", prefix=mapping.s3_prefix, error=str(exc))
            continue
        for key in keys:
            log.warning("aborted an unfinished upload left by an earlier apply", key=f"{store.name}:{key}")
        count += len(keys)
    return count


def run_locked(
    ws: Workspace,
    plan: Plan,
    *,
    parallelism: int,
    reporter: Reporter,
    lost: threading.Event,
) -> tuple[ApplyResult, ActionRunner]:
    """Execute `plan` with the lock already held; once `lost` is set no new action starts."""
    if not plan.applyable:
        raise UserError("the plan has errors and cannot be applied:\n  " + "\n  ".join(plan.errors))
    abort_leftover_uploads(ws)
    runner = ActionRunner(ws.stores, manifests=ManifestWriter(ws.desired, ws.stores))
    result = execute(build_graph(plan), runner, parallelism=parallelism, reporter=reporter, stop=lost)
    return result, runner
