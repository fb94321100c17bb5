"""Running a plan safely: lock every bucket it touches, clear what a killed apply left, then execute.

Both `pixel apply` (plan then apply) and `pixel apply FILE` (a saved plan)
come through here, so both hold the lock, both abort the multipart uploads a
killed apply left (those pixel recorded under `.pixel/uploads/`; never another
tool's) and both stop starting actions when the lock is lost.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import NamedTuple

from reconciler.apply.executor import DONE, FAILED, SKIPPED, ApplyResult, LocalExecutor, PlanExecutor, Reporter
from reconciler.apply.history import record_apply
from reconciler.apply.lock import DEFAULT_LEASE_SECONDS, StoreLock, hold_all
from reconciler.apply.runner import ByteCounts
from reconciler.errors import UserError
from reconciler.keys import printable
from reconciler.logs import get_logger
from reconciler.model import Desired, Plan, S3StoreSpec
from reconciler.stores.base import JournalsUploads, Store, StoreError
from reconciler.workspace import Workspace


@dataclasses.dataclass(frozen=True, slots=True)
class LockOptions:
    timeout: float = 0.0  # seconds to wait for another apply's lock; 0 fails fast
    lease_seconds: float = DEFAULT_LEASE_SECONDS


def managed_s3_stores(desired: Desired) -> list[str]:
    """S3 stores any mapping uses, sorted: every apply locks them in this order, so two never deadlock."""
    names = {m.s3_store for m in desired.mappings}
    if desired.final is not None:
        names.add(desired.final.store)
    return sorted(n for n in names if isinstance(desired.stores.get(n), S3StoreSpec))


def store_locks(desired: Desired, stores: Mapping[str, Store], options: LockOptions) -> list[StoreLock]:
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


class Held(NamedTuple):
    ws: Workspace  # the workspace whose stores are bound to the held locks' apply
    lost: threading.Event  # set if any lock is lost


@contextmanager
def locked(ws: Workspace, options: LockOptions) -> Iterator[Held]:
    """Hold the apply lock on every managed bucket: `with locked(ws, options) as (ws, lost):`.

    Each multipart upload's record names the apply that started it, so the workspace yielded holds the
    stores bound to that apply's lock id. `ws` itself is left as it was: the service shares it between
    threads, and one request's lock id must not reach another's uploads.
    """
    locks = store_locks(ws.desired, ws.stores, options)
    with _sigterm_as_interrupt(), hold_all(locks, options.timeout) as lost:
        ids = {id(lock.store): lock.id for lock in locks}
        bound = {
            name: store.for_apply(ids[id(store)]) if isinstance(store, JournalsUploads) and id(store) in ids else store
            for name, store in ws.stores.items()
        }
        yield Held(dataclasses.replace(ws, stores=bound), lost)


def abort_leftover_uploads(ws: Workspace) -> int:
    """Abort the multipart uploads an earlier, killed apply left; returns how many were aborted.

    Only uploads pixel recorded under `.pixel/uploads/` when it started them are
    touched: with the lock held, a record can only be a dead apply's. Every other
    in-progress upload, under a managed prefix or not, belongs to another tool
    (aws cli, rclone, a training job) that may be writing right now: left alone.
    """
    log = get_logger("pixel.apply")
    count = 0
    for name in managed_s3_stores(ws.desired):
        store = ws.stores.get(name)
        if not isinstance(store, JournalsUploads):
            continue
        try:
            uploads = store.journaled_uploads()
        except StoreError as exc:
            # Not fatal: the leftovers only cost storage, and the plan's uploads start afresh anyway.
            log.warning("could not read the records of unfinished uploads", store=name, error=str(exc))
            continue
        for upload in uploads:
            record = f"{store.name}:{upload.record}"
            if upload.problem:
                log.warning("left an unreadable upload record alone", record=record, problem=upload.problem)
                continue
            where = f"{store.name}:{upload.key}"
            earlier = {"apply": upload.apply_id or "?", "host": upload.host or "?", "started": upload.started or "?"}
            try:
                aborted = store.abort_journaled(upload)
            except StoreError as exc:
                log.warning("could not abort an unfinished upload left by an earlier apply", key=where,
                            upload_id=upload.upload_id, error=str(exc), **earlier)
                continue
            if aborted:
                log.warning("aborted an unfinished upload left by an earlier apply", key=where,
                            upload_id=upload.upload_id, **earlier)
                count += 1
            else:
                log.info("removed the record of an upload that had already finished", key=where,
                         upload_id=upload.upload_id, **earlier)
    return count


def run_locked(
    ws: Workspace,
    plan: Plan,
    *,
    parallelism: int,
    reporter: Reporter,
    lost: threading.Event,
    executor: PlanExecutor | None = None,
) -> tuple[ApplyResult, ByteCounts]:
    """Execute `plan` with the lock already held; once `lost` is set no new action starts.

    Whatever the executor, the lock stays here, with this process, renewed for the whole apply.
    """
    if not plan.applyable:
        raise UserError("the plan has errors and cannot be applied:\n  " + "\n  ".join(map(printable, plan.errors)))
    executor = executor or LocalExecutor(parallelism)
    executor.check(plan, ws.desired)
    abort_leftover_uploads(ws)
    result, counts = executor.run(plan, ws.desired, ws.stores, reporter=reporter, stop=lost)
    buckets = [s for name in managed_s3_stores(ws.desired) if isinstance(s := ws.desired.stores[name], S3StoreSpec)]
    tally: dict[str, int] = {DONE: len(result.done), FAILED: len(result.failed), SKIPPED: len(result.skipped)}
    record_apply(buckets, counts=tally, targets=plan.targets, ok=result.ok)
    return result, counts
