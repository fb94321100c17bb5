"""The small-upload lane in a Dask batch (apply/dask_worker.py `run_batch`): a batch run again after its worker
died meets the objects its first run stored, and If-None-Match refuses them; `idempotent` counts such a refusal
as done when the object holds exactly the planned bytes, as `run_idempotent` does on a worker thread."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.apply.bulk import SmallUploads
from reconciler.model import Action, ActionKind, Change, ObjectRef
from reconciler.stores.base import PermanentStoreError
from reconciler.stores.s3.direct.bulk import BulkSender
from reconciler.stores.s3.direct.http_pool import Headers, Response

ACTION = Action(
    "upload:s3:k", ActionKind.UPLOAD, Change.CREATE, "m", ObjectRef("s3", "k"), "new",
    source=ObjectRef("disk", "k"), size=3, md5="0" * 32,
)
REFUSED = Response(412, "Precondition Failed", Headers([]), b"")


class Bucket:
    """Just enough of S3Store for the lane: its refusal of the PUT, an endpoint that is never connected."""

    def bulk_endpoint(self, sender: BulkSender[Any], connections: int) -> Any:
        return sender.endpoint("127.0.0.1", 9, connections=connections, connect_timeout=1, read_timeout=1)

    def bulk_fits(self, size: int) -> bool:
        return True

    def put_wire(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not sent in this test")

    def put_answered(self, key: str, answer: Any, *, size: int, md5: str) -> Any:
        raise PermanentStoreError(f"upload {key}: 412 PreconditionFailed", code="PreconditionFailed", key=key)


class Runner:
    def __init__(self, settled: bool) -> None:
        self.settled = settled
        self.asked = 0

    def upload_answered(self, action: Action, target: Bucket, answer: Any) -> None:
        target.put_answered(action.target.key, answer, size=action.size, md5="0" * 32)

    def already_settled(self, action: Action) -> bool:
        self.asked += 1
        return self.settled


@pytest.mark.parametrize(("idempotent", "settled", "done"), [(True, True, True), (True, False, False),
                                                           (False, True, False)])
def test_a_refusal_counts_as_done_only_in_an_idempotent_lane_and_only_when_the_object_is_the_planned_one(
    idempotent: bool, settled: bool, done: bool
) -> None:
    runner = Runner(settled)
    stores: Any = {"s3": Bucket()}
    lane = SmallUploads(runner, stores, connections=1, idempotent=idempotent)  # type: ignore[arg-type]
    try:
        assert lane.takes(ACTION)
        error = lane._answered(ACTION, REFUSED)
    finally:
        lane.close()
    assert (error is None) is done
    if not done:
        assert isinstance(error, PermanentStoreError) and error.code == "PreconditionFailed"
    assert runner.asked == (1 if idempotent else 0)  # a plain apply never asks: a refusal there is a conflict
