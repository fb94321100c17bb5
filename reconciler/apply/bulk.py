"""The executor's lane for small uploads: sent and answered on the executor's own thread, no worker each.

A tree of small files is uploaded as fast as the machine's CPU allows, and with a worker thread per file in
flight most of a small PUT's client CPU went to handing the GIL between threads (stores/s3/direct/bulk.py
says how much). Here the executor's thread prepares each small upload exactly as a worker would (the
runner's checks of its source, the store's headers and signature: `ActionRunner.upload_wire`), hands the
bytes to one `BulkSender` over every bucket's connections, and reads each answer as the store would
(`ActionRunner.upload_answered`). Big files, every other action kind, and stores that cannot send this way
(botocore's transport, TLS endpoints) keep the worker threads.

A request the lane could not finish for a reason a retry may cure (a dropped connection, a deadline, a
5xx or throttling) goes to the worker threads with the executor's retry policy; there it runs as a batch
re-run would (`run_idempotent`): a PUT whose first attempt did land, its answer lost, then meets its own
object (If-None-Match refuses it) and counts as done, since the object holds exactly the planned bytes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.apply.runner import ActionRunner, WritesInBulk
from reconciler.model import Action, ActionKind
from reconciler.stores.base import Store, StoreError, TransientStoreError
from reconciler.stores.s3.direct.bulk import BulkSender, Endpoint, Wire
from reconciler.stores.s3.direct.http_pool import DeadlineExceeded, Response


def dropped(answer: Response | Exception) -> bool:
    """A connection that failed without a deadline passing: closed or reset by the server, refused."""
    return isinstance(answer, OSError) and not isinstance(answer, DeadlineExceeded)


class SmallUploads:
    """A `Lane` (apply/executor.py) for uploads that fit one PutObject read whole into memory."""

    def __init__(
        self,
        runner: ActionRunner,
        stores: Mapping[str, Store],
        *,
        connections: int,
        idempotent: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`idempotent`: every refusal is checked as `run_idempotent` checks it (a Dask batch run again after its
        worker died meets the objects its first run stored), not only a resend's."""
        self._runner = runner
        self._idempotent = idempotent
        self._stores = stores
        self._connections = connections
        self._clock = clock
        self._sender: BulkSender[Action] = BulkSender(clock)
        # By store name, asked once: a runtime Protocol's isinstance costs ~10 us, a dict lookup 50 ns.
        self._targets: dict[str, tuple[WritesInBulk, Endpoint[Any]] | None] = {}
        self._started: dict[str, float] = {}
        self._resent: set[str] = set()  # sent again after a dropped connection
        self._wires: dict[str, Wire] = {}  # what each action in flight sent: a resend sends the same
        self._unsent: list[tuple[Action, Exception]] = []  # failed before a byte went out

    def again(self, action: Action) -> None:
        """The action on a worker thread, after the lane could not finish it (see the module's docstring)."""
        self._runner.run_idempotent(action)

    def takes(self, action: Action) -> bool:
        if action.kind is not ActionKind.UPLOAD or action.md5 is None or action.source is None:
            return False
        name = action.target.store
        if name not in self._targets:
            target = self._stores.get(name)
            bulk = target if isinstance(target, WritesInBulk) else None
            endpoint = None if bulk is None else bulk.bulk_endpoint(self._sender, self._connections)
            self._targets[name] = None if bulk is None or endpoint is None else (bulk, endpoint)
        found = self._targets[name]
        return found is not None and found[0].bulk_fits(action.size)

    def start(self, action: Action) -> None:
        """Send `action` (`takes` said yes; the executor keeps fewer than `connections` in flight)."""
        self._started[action.id] = self._clock()
        target, endpoint = self._target(action)
        try:
            wire = self._runner.upload_wire(action, target)
        except Exception as exc:  # the source changed or is unreadable, a second Ctrl-C: as a worker meets it
            self._unsent.append((action, exc))
            return
        self._wires[action.id] = wire
        endpoint.send(action, wire)

    def in_flight(self) -> int:
        return self._sender.in_flight() + len(self._unsent)

    def wake(self) -> None:
        self._sender.wake()

    def wait(self) -> list[tuple[Action, Exception | None, float]]:
        """The actions finished since the last call, each with its failure (None: done) and its seconds."""
        landed: list[tuple[Action, Exception | None]] = [*self._unsent]
        self._unsent = []
        if not landed:
            for action, answer in self._sender.wait():
                if dropped(answer) and action.id not in self._resent:
                    # As the threaded path's transport does (raw.py `_attempt`): a kept-alive connection the
                    # server closed is the usual cause, and the same bytes go again at once (signed moments
                    # ago; the source is not read again, nor counted twice).
                    self._resent.add(action.id)
                    self._target(action)[1].send(action, self._wires[action.id])
                    continue
                landed.append((action, self._answered(action, answer)))
        now = self._clock()
        for action, _ in landed:
            self._resent.discard(action.id)
            self._wires.pop(action.id, None)
        return [(action, error, now - self._started.pop(action.id, now)) for action, error in landed]

    def _answered(self, action: Action, answer: Response | Exception) -> Exception | None:
        try:
            self._runner.upload_answered(action, self._target(action)[0], answer)
        except StoreError as exc:
            if (self._idempotent or action.id in self._resent) and not isinstance(exc, TransientStoreError):
                # Sent twice: the first may have landed with its answer lost, and the second then meets it
                # (If-None-Match, If-Match). An object holding exactly the planned bytes is this action done.
                with contextlib.suppress(StoreError):
                    if self._runner.already_settled(action):
                        return None
            return exc
        except Exception as exc:  # a bug: this action fails, the rest go on (as on a worker)
            return exc
        return None

    def _target(self, action: Action) -> tuple[WritesInBulk, Endpoint[Any]]:
        """The store and endpoint of an action `takes` took."""
        found = self._targets[action.target.store]
        assert found is not None
        return found

    def close(self) -> None:
        self._sender.close()
