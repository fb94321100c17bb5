"""Faults between the small-upload lane (apply/bulk.py) and SeaweedFS: a drop is resent at once, once; an answer
lost after the server stored the object ends done, never failed, and never as anything but the planned bytes.

The tree, the proxy and the helpers are test_faults.py's: every file there is small, so each PUT is the lane's.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from reconciler.apply import bulk
from reconciler.model import Action
from reconciler.stores.s3.direct import bulk as sender
from tests.faults.proxy import Fault, FaultProxy
from tests.faults.test_faults import FILES, cli, proxy, sends, stored, world  # noqa: F401

pytestmark = pytest.mark.integration
KEY = "datasets/raw/f05.jsonl"


@pytest.fixture
def lane(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """What went through the lane: "start" per action prepared (its source read), "send" per request the lane
    put on the wire, "again" per action handed to a worker after it."""
    calls: Counter[str] = Counter()
    start, again, send = bulk.SmallUploads.start, bulk.SmallUploads.again, sender.Endpoint.send

    def started(self: bulk.SmallUploads, action: Action) -> None:
        calls[f"start {action.target.key}"] += 1
        start(self, action)

    def sent(self: sender.Endpoint[Action], action: Action, wire: sender.Wire) -> None:
        calls[f"send {action.target.key}"] += 1
        send(self, action, wire)

    def handed_on(self: bulk.SmallUploads, action: Action) -> None:
        calls[f"again {action.target.key}"] += 1
        again(self, action)

    monkeypatch.setattr(bulk.SmallUploads, "start", started)
    monkeypatch.setattr(sender.Endpoint, "send", sent)
    monkeypatch.setattr(bulk.SmallUploads, "again", handed_on)
    return calls


def applied_ok(world: dict[str, Any]) -> None:  # noqa: F811  # test_faults's fixture, by name
    run = cli(world, "apply", "--auto-approve", "--format", "json")
    assert run.code == 0, run.out + run.err
    report = json.loads(run.out)
    assert report["status"] == "ok" and report["counts"]["done"] == FILES, report
    objects = stored(world)
    assert len(objects) == FILES
    data = (world["root"] / "raw" / "f05.jsonl").read_bytes()
    head = world["client"].head_object(Bucket=world["bucket"], Key=KEY)
    assert head["Metadata"]["md5"] == objects[KEY] and world["client"].get_object(
        Bucket=world["bucket"], Key=KEY
    )["Body"].read() == data


@pytest.mark.usefixtures("retries_on_a_clock_that_does_not_wait")
@pytest.mark.parametrize(
    ("kind", "times", "starts", "agains"),
    [
        # A drop: the lane's own resend, at once, and no worker.
        ("reset", 1, 2, 0),
        # The answer lost after the server stored the object: the resend meets the object its first send
        # stored (If-None-Match refuses it), which holds the planned bytes: done.
        ("lost", 1, 2, 0),
        # Lost twice: the lane resends only once, then a worker's retry finds the object stored.
        ("lost", 2, 2, 1),
    ],
)
def test_a_lane_put_that_lost_its_connection_lands_once_and_ends_done(
    world: dict[str, Any], proxy: FaultProxy, lane: Counter[str],  # noqa: F811
    kind: str, times: int, starts: int, agains: int,
) -> None:
    proxy.faults.append(Fault(kind, method="PUT", path=KEY, times=times))
    applied_ok(world)
    assert proxy.injected(kind) == times
    assert sends(proxy, "PUT", f"/{KEY}") == starts + agains
    # Read once, whatever was resent: the same bytes go again (and progress counts them once).
    assert (lane[f"start {KEY}"], lane[f"send {KEY}"], lane[f"again {KEY}"]) == (1, starts, agains)
