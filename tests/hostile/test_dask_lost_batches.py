"""The Dask driver against a cluster that loses batches: every action ends done, or a real failure is reported.

A fake client stands in for distributed's: it "runs" a batch the moment it is submitted (every action that
nothing blocks is done) and loses the first attempt of the chosen batches in one of the three ways a real
cluster does: the worker holding a finished batch's result dies before the driver fetches it ("Couldn't
gather keys"), the worker dies under the batch (KilledWorker), or the scheduler drops the task (its future
comes back neither finished nor erred). No cluster, no timing: the order of events is the fake's.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import distributed
import pytest

from reconciler.apply.batching import make_batches
from reconciler.apply.dask_executor import MAX_LOSSES, _Drive
from reconciler.apply.dask_worker import BatchResult, BatchWork, Settled
from reconciler.apply.executor import DONE, FAILED, SKIPPED, NullReporter
from reconciler.model import Action, ActionKind, Change, Desired, ObjectRef, Plan, Precondition, S3StoreSpec

MD5 = hashlib.md5(b"body").hexdigest()
DESIRED = Desired(stores={"s3": S3StoreSpec("s3", "bucket")}, mappings=())


def _action(key: str, kind: ActionKind = ActionKind.UPLOAD) -> Action:
    return Action(f"{kind.value}:s3:{key}", kind, Change.CREATE, "m", ObjectRef("s3", key), "t",
                  size=4, md5=MD5, precondition=Precondition())


# Six uploads in three batches of two, then one delete that waits for all of them: a batch after three others.
UPLOADS = tuple(_action(f"k{i}") for i in range(6))
LAST = _action("zz", ActionKind.DELETE)
PLAN = Plan(actions=(*UPLOADS, LAST), edges=tuple((u.id, LAST.id) for u in UPLOADS))


class FakeFuture:
    def __init__(self, key: str, status: str, value: Any = None, error: BaseException | None = None,
                 gather_fails: bool = False) -> None:
        self.key, self.status, self._value, self._error, self._gather_fails = key, status, value, error, gather_fails
        self.released = False

    def result(self) -> Any:
        if self._gather_fails:
            # What Client.gather raises once the only worker that held the result is gone for good.
            raise distributed.client.FutureCancelledError(self.key, reason="lost dependencies")
        return self._value

    def exception(self) -> BaseException | None:
        return self._error

    def done(self) -> bool:
        return True

    def release(self) -> None:
        self.released = True


class FakeCompleted:
    """distributed.as_completed over FakeFutures: each comes out once, in the order it was added."""

    def __init__(self, futures: list[FakeFuture] | None = None, loop: Any = None) -> None:
        self.queue: deque[FakeFuture] = deque(futures or ())

    def add(self, future: FakeFuture) -> None:
        self.queue.append(future)

    def __iter__(self) -> Iterator[FakeFuture]:
        while self.queue:
            yield self.queue.popleft()


class FakeClient:
    loop = None

    def __init__(self, lose: dict[int, str], *, fail: frozenset[int] = frozenset(), times: int = 1) -> None:
        self.lose, self.fail, self.times = lose, fail, times
        self.submitted: list[tuple[int, str, tuple[tuple[str, str], ...]]] = []
        self.collected: list[int] = []  # batches whose result the driver has taken, in order
        self.attempts: dict[int, int] = {}
        self.with_futures = 0  # other tasks' futures passed as arguments: results a dead worker can take along

    def subscribe_topic(self, topic: str, handler: Any) -> None:
        pass

    def unsubscribe_topic(self, topic: str) -> None:
        pass

    def cancel(self, futures: list[FakeFuture]) -> None:
        pass

    def submit(self, fn: Any, ctx: Any, work: BatchWork, *upstream: Any, key: str, retries: int) -> FakeFuture:
        self.with_futures += len(upstream)
        blocked = dict(getattr(work, "blocked", ()))
        self.submitted.append((work.index, key, tuple(sorted(blocked.items()))))
        attempt = self.attempts[work.index] = self.attempts.get(work.index, 0) + 1
        outcomes = tuple(
            Settled(a.id, SKIPPED, blocked_by=blocked[a.id]) if a.id in blocked else Settled(a.id, DONE)
            for a in work.actions
        )
        result = BatchResult(work.index, "tcp://fake", outcomes)
        if work.index in self.fail:
            return FakeFuture(key, "error", error=ValueError("no such bucket"))
        how = self.lose.get(work.index)
        if how is None or attempt > self.times:
            return _Collected(key, result, self.collected)
        if how == "gather":
            return FakeFuture(key, "finished", result, gather_fails=True)
        if how == "killed":
            dead: Any = "tcp://dead"  # the scheduler passes its WorkerState; only the repr is ever read
            return FakeFuture(key, "error", error=distributed.KilledWorker(key, dead, 3))
        return FakeFuture(key, "pending")  # dropped by the scheduler after as_completed let it go


class _Collected(FakeFuture):
    def __init__(self, key: str, value: BatchResult, log: list[int]) -> None:
        super().__init__(key, "finished", value)
        self._log = log

    def result(self) -> Any:
        self._log.append(self._value.index)
        return self._value


def _drive(client: FakeClient, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(distributed, "as_completed", FakeCompleted)
    batches = make_batches(PLAN, max_actions=2)
    assert [b.after for b in batches.batches] == [(), (), (), (0, 1, 2)]
    drive = _Drive(client, batches, PLAN, DESIRED, {}, NullReporter(), threading.Event(), parallelism=2)
    result, _ = drive.run()
    return result


@pytest.mark.parametrize("how", ["gather", "killed", "dropped"])
def test_a_lost_batch_is_sent_again_and_every_action_ends_done(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeClient({1: how, 3: how})
    result = _drive(client, monkeypatch)
    assert sorted((o.action.id, o.status) for o in result.outcomes) == sorted((a.id, DONE) for a in PLAN.actions)
    assert not result.interrupted
    sent = [(index, key) for index, key, _ in client.submitted]
    # The lost batches went twice, under fresh keys; the others once.
    assert sorted(index for index, _ in sent) == [0, 1, 1, 2, 3, 3]
    assert len({key for _, key in sent}) == len(sent)
    # The last batch was sent only once the driver held the results of all three it waits for.
    first_of_last = next(i for i, (index, _) in enumerate(sent) if index == 3)
    assert {index for index, _ in sent[:first_of_last]} == {0, 1, 2}
    assert set(client.collected[:3]) == {0, 1, 2} and client.collected[3] == 3
    assert client.with_futures == 0, "a batch is sent with plain values, never with other tasks' futures"


def test_a_batch_lost_again_and_again_fails_its_actions_and_skips_what_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = FakeClient({0: "killed"}, times=MAX_LOSSES + 1)
    result = _drive(client, monkeypatch)
    status = {o.action.id: o for o in result.outcomes}
    assert [status[a.id].status for a in UPLOADS] == [FAILED, FAILED, DONE, DONE, DONE, DONE]
    assert f"lost with its worker {MAX_LOSSES + 1} times" in status[UPLOADS[0].id].error
    assert status[LAST.id].status == SKIPPED and status[LAST.id].blocked_by == UPLOADS[0].id
    assert [index for index, _, _ in client.submitted].count(0) == MAX_LOSSES + 1


def test_a_batch_that_fails_for_a_reason_of_its_own_is_not_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeClient({}, fail=frozenset({2}))
    result = _drive(client, monkeypatch)
    status = {o.action.id: o for o in result.outcomes}
    assert [status[a.id].status for a in UPLOADS] == [DONE, DONE, DONE, DONE, FAILED, FAILED]
    assert "no such bucket" in status[UPLOADS[4].id].error
    assert status[LAST.id].status == SKIPPED
    assert [index for index, _, _ in client.submitted] == [0, 1, 2]
