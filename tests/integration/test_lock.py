"""The per-bucket apply lock on SeaweedFS, with real processes: races, kill -9, force-unlock, Ctrl-C.

A fault proxy stalls the data upload for a few seconds so the holder is
guaranteed to still be running when the other process arrives.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.lock import StoreLock
from reconciler.model import S3StoreSpec
from reconciler.stores.s3 import S3Store
from tests.faults.proxy import Fault, FaultProxy
from tests.integration.pixelenv import PIXEL, Run, pixel_in_process, write_specs
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
LOCK = ".pixel/lock"


@pytest.fixture
def proxy(seaweed: Any) -> Iterator[FaultProxy]:
    # One data PUT hangs 2 s and is then dropped (the retry succeeds): the apply holding the lock is slow.
    faults = [Fault("stall", method="PUT", path="/datasets/", times=1, stall_seconds=2.0)]
    with FaultProxy(seaweed.endpoint, faults, deadline=60) as p:
        yield p


@pytest.fixture
def world(tmp_path: Path, seaweed: Any, bucket: str, proxy: FaultProxy) -> dict[str, Any]:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "a.jsonl").write_bytes(b'{"a": 1}\n')
    specs = write_specs(
        tmp_path / "specs", endpoint=proxy.endpoint, bucket=bucket, root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True}],
    )
    env = {**os.environ, **seaweed.env(), "NO_COLOR": "1"}
    return {"specs": specs, "env": env, "client": seaweed.client(), "bucket": bucket, "seaweed": seaweed}


def start(world: dict[str, Any], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PIXEL, "apply", "--auto-approve", "--specs", str(world["specs"]), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=world["env"], text=True,
    )


def finish(proc: subprocess.Popen[str]) -> Run:
    out, err = proc.communicate(timeout=60)
    return Run(proc.returncode, out, err)


def lock_body(world: dict[str, Any]) -> dict[str, Any] | None:
    try:
        raw = world["client"].get_object(Bucket=world["bucket"], Key=LOCK)["Body"].read()
    except world["client"].exceptions.NoSuchKey:
        return None
    data: dict[str, Any] = json.loads(raw)
    return data


def cli(world: dict[str, Any], *args: str) -> Run:
    """One command in this process (no concurrency needed here): saves the console script's start-up time."""
    return pixel_in_process([args[0], "--specs", str(world["specs"]), *args[1:]], world["env"])


def test_two_applies_at_once_exactly_one_runs_and_the_other_names_the_holder(world: dict[str, Any]) -> None:
    first, second = start(world), start(world)
    results = [finish(first), finish(second)]
    winners = [r for r in results if r.code == 0]
    losers = [r for r in results if r.code != 0]
    assert len(winners) == 1 and len(losers) == 1, [(r.code, r.err[-500:]) for r in results]
    holder = re.search(r"lock acquired\s+id=([0-9a-f]{32})", winners[0].err)
    assert holder, winners[0].err
    loser = losers[0]
    assert f"is locked by apply {holder.group(1)} (host " in loser.err
    assert "--lock-timeout" in loser.err and f"pixel force-unlock {holder.group(1)}" in loser.err
    assert "action finished" not in loser.err and "lock acquired" not in loser.err
    assert lock_body(world) is None


def test_kill_9_of_the_holder_then_force_unlock_with_the_right_id_only(world: dict[str, Any]) -> None:
    holder = start(world)
    wait_for(lambda: lock_body(world) is not None, "the lock written")
    body = lock_body(world)
    assert body is not None and body["pid"] == holder.pid
    assert set(body) >= {"id", "host", "pid", "started", "lease_seconds", "expires"}
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)

    blocked = cli(world, "apply", "--auto-approve")
    assert blocked.code == 1
    assert f"is locked by apply {body['id']} (host {body['host']}, pid {holder.pid})" in blocked.err

    wrong = cli(world, "force-unlock", "0" * 32)
    assert wrong.code == 1
    assert f"held by apply {body['id']}" in wrong.err and "nothing was removed" in wrong.err
    assert lock_body(world) == body

    right = cli(world, "force-unlock", body["id"])
    assert right.code == 0, right.err
    assert f"Lock {body['id']} on bucket" in right.out
    assert lock_body(world) is None

    applied = cli(world, "apply", "--auto-approve")
    assert applied.code == 0, applied.err
    assert "No changes." in cli(world, "plan").out


def test_lock_timeout_waits_and_plan_takes_no_lock(
    world: dict[str, Any], proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy.faults.clear()  # the wait under test is for the lock, not for a slow upload
    for name, value in world["seaweed"].env().items():
        monkeypatch.setenv(name, value)
    spec = S3StoreSpec("s3", world["bucket"], endpoint=world["seaweed"].endpoint, region="us-east-1",
                       addressing_style="path", checksum="when_required")
    other = StoreLock(S3Store(spec), LOCK, lease_seconds=30)
    other.acquire()
    try:
        planned = cli(world, "plan", "--detailed-exitcode")
        assert planned.code == 2, planned.err  # read-only: the lock does not stop it
        refused = cli(world, "apply", "--auto-approve")
        assert refused.code == 1 and f"is locked by apply {other.id}" in refused.err
        # Released once the waiting apply has found the lock held (its refused PUT, then the GET of the holder),
        # not after a fixed time: the apply must have waited, however loaded the machine.
        mark = len(proxy.log.lines)

        def lock_requests(method: str) -> int:
            return sum(line.startswith(f"{method} ") and LOCK in line for line in proxy.log.lines[mark:])

        def release_once_seen_held() -> None:
            wait_for(lambda: lock_requests("GET") >= 1, "the waiting apply to read the holder", timeout=60)
            other.release()

        releaser = threading.Thread(target=release_once_seen_held, daemon=True)
        releaser.start()
        waited = cli(world, "apply", "--auto-approve", "--lock-timeout", "30s")
        releaser.join(timeout=60)
        assert waited.code == 0, waited.err
        assert "waiting for the lock" in waited.err
        assert lock_requests("PUT") >= 2  # refused while held, then taken
    finally:
        other.release()
    assert lock_body(world) is None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_releases_the_lock(world: dict[str, Any], proxy: FaultProxy, signum: int) -> None:
    proc = start(world)
    wait_for(lambda: any("/datasets/" in line for line in proxy.log.lines), "an upload in flight")
    assert lock_body(world) is not None
    proc.send_signal(signum)
    result = finish(proc)
    assert result.code == 1, result.err
    assert "lock released" in result.err
    assert lock_body(world) is None
