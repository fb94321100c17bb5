"""The pieces of the distributed apply that need no cluster: roots, skips across batches, idempotent reruns."""

from __future__ import annotations

import hashlib

import pytest

from reconciler.apply.dask_executor import local_roots, missing_roots, s3_stores, unusable_stores
from reconciler.apply.dask_worker import BatchResult, BatchWork, Settled, blocked_actions
from reconciler.apply.executor import DONE, FAILED, SKIPPED
from reconciler.apply.runner import ActionRunner
from reconciler.choices import Executor
from reconciler.commands.apply_saved import choose_executor
from reconciler.errors import UserError
from reconciler.model import (
    Action,
    ActionKind,
    Change,
    Desired,
    LocalStoreSpec,
    ObjectRef,
    Plan,
    Precondition,
    S3StoreSpec,
)
from reconciler.stores.base import ObjectChanged
from reconciler.stores.memory import MemoryStore

MD5 = hashlib.md5(b"body").hexdigest()


def _act(kind: ActionKind, target: str, source: str | None = None, **pre: object) -> Action:
    store, _, key = target.partition(":")
    src = None if source is None else ObjectRef(*source.split(":", 1))
    return Action(f"{kind.value}:{target}", kind, Change.CREATE, "m", ObjectRef(store, key), "t", source=src,
                  size=4, md5=MD5, precondition=Precondition(**pre))  # type: ignore[arg-type]


DESIRED = Desired(
    stores={"s3": S3StoreSpec("s3", "bucket"), "disk": LocalStoreSpec("disk", "/data/root"),
            "other": LocalStoreSpec("other", "/elsewhere")},
    mappings=(),
)


def test_only_the_local_roots_the_plan_touches_are_required() -> None:
    s3_only = Plan(actions=(_act(ActionKind.COPY, "s3:b", "s3:a"), _act(ActionKind.DELETE, "s3:a")), edges=())
    assert local_roots(s3_only, DESIRED) == {}
    upload = Plan(actions=(_act(ActionKind.UPLOAD, "s3:a", "disk:a"),), edges=())
    assert local_roots(upload, DESIRED) == {"/data/root": "disk"}
    manifest = Plan(actions=(_act(ActionKind.WRITE_MANIFEST, "disk:m.json"),), edges=())
    assert local_roots(manifest, DESIRED) == {"/data/root": "disk", "/elsewhere": "other"}


def test_each_worker_that_cannot_use_an_s3_store_is_named_with_the_reason() -> None:
    upload = Plan(actions=(_act(ActionKind.UPLOAD, "s3:a", "disk:a"),), edges=())
    specs = s3_stores(upload, DESIRED)
    assert specs == (DESIRED.stores["s3"],)
    seen = {"tcp://w1": {"s3": ""}, "tcp://w2": {"s3": "no AWS credentials found"}, "tcp://w3": {}}
    assert unusable_stores(seen, specs) == [
        "worker tcp://w2 cannot use store 's3' (bucket bucket): no AWS credentials found",
        "worker tcp://w3 cannot use store 's3' (bucket bucket): not checked on this worker",
    ]


def test_each_worker_missing_a_root_is_named() -> None:
    seen = {"tcp://w1": {"/data/root": True}, "tcp://w2": {"/data/root": False}}
    expected = ["worker tcp://w2 does not see /data/root (local store 'disk')"]
    assert missing_roots(seen, {"/data/root": "disk"}) == expected


def test_a_dependency_that_failed_in_an_earlier_batch_skips_its_dependents_naming_the_root_cause() -> None:
    upstream = BatchResult(0, "w", (Settled("a", FAILED, "boom"), Settled("b", SKIPPED, blocked_by="a"),
                                    Settled("c", DONE)))
    work = BatchWork(1, (), (("x", ("a",)), ("y", ("b", "c")), ("z", ("c",))))
    assert blocked_actions(work, (upstream,)) == {"x": "a", "y": "a"}


def test_a_rerun_finding_its_work_done_counts_as_done_and_a_real_conflict_still_fails() -> None:
    s3, disk = MemoryStore("s3"), MemoryStore("disk")
    disk.put("a", b"body")
    runner = ActionRunner({"s3": s3, "disk": disk})
    upload = _act(ActionKind.UPLOAD, "s3:a", "disk:a", target_absent=True)
    runner.run_idempotent(upload)
    runner.run_idempotent(upload)  # the batch ran again after its worker died: If-None-Match fails, content is right
    with pytest.raises(ObjectChanged):
        runner(upload)  # the plain runner (the local executor's) still reports the 412
    s3.put("a", b"other")
    with pytest.raises(ObjectChanged):
        runner.run_idempotent(upload)  # someone else's bytes: a conflict, not done

    s3.put("gone", b"body")
    delete = _act(ActionKind.DELETE, "s3:gone", target_etag=MD5)
    runner.run_idempotent(delete)
    runner.run_idempotent(delete)  # already gone: done


def test_the_dask_executor_needs_a_scheduler_address() -> None:
    with pytest.raises(UserError, match="--scheduler tcp://HOST:8786 or PIXEL_DASK_SCHEDULER"):
        choose_executor(Executor.DASK, None, 16)
    assert type(choose_executor(Executor.LOCAL, None, 4)).__name__ == "LocalExecutor"
