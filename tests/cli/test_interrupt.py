"""Ctrl-C on a real `pixel apply` process mid-apply: what it says, what it stops, and that the next apply converges.

A gate proxy between pixel and SeaweedFS holds the data uploads until the test opens it, so the
apply is provably mid-flight when SIGINT arrives; every wait is on a condition (a request held,
a line printed), never on the clock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from reconciler.apply.executor import NOT_STARTED, STOPPED, TransferStopped, execute
from reconciler.apply.report import render_apply_summary
from reconciler.model import Action, ActionKind, Change, ObjectRef, Plan
from reconciler.plan.graph import build_graph
from tests.faults.proxy import FaultProxy
from tests.integration.pixelenv import PIXEL, Run, pixel_in_process, write_specs

pytestmark = pytest.mark.integration
WAIT_S = 60.0
FILES = 40


class GateProxy(FaultProxy):
    """Forwards everything, but holds each request `holds` matches until `gate` is set."""

    def __init__(self, upstream: str, holds: Callable[[str, str], bool]) -> None:
        super().__init__(upstream, [], deadline=WAIT_S * 2)
        self.holds = holds
        self.gate = threading.Event()
        self.held = 0
        self.changed = threading.Condition()

    def __enter__(self) -> GateProxy:
        super().__enter__()
        return self

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        if self.holds(method, path) and not self.gate.is_set():
            with self.changed:
                self.held += 1
                self.changed.notify_all()
            self.gate.wait(WAIT_S)
        return super()._forward(method, path, headers, body)

    def wait_held(self, n: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.held >= n, WAIT_S), f"{self.held} requests held, wanted {n}"


class Lines:
    """A child's stream, read line by line on a thread, that a test can wait on."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.closed = False
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def wait_for(self, text: str) -> str:
        def seen() -> str | None:
            return next((line for line in self.lines if text in line), None)

        with self.changed:
            assert self.changed.wait_for(lambda: seen() is not None or self.closed, WAIT_S), f"no {text!r}"
            line = seen()
            assert line is not None, f"{text!r} never printed; stderr: {self.lines}"
            return line

    def all(self) -> list[str]:
        self._thread.join(WAIT_S)
        return self.lines


def _world(tmp_path: Path, endpoint: str, bucket: str, files: dict[str, int]) -> Path:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    for name, size in files.items():
        with (root / "raw" / name).open("wb") as f:
            f.write(name.encode() * (size // len(name)) + b"\n" * (size % len(name)))
    return write_specs(
        tmp_path / "specs", endpoint=endpoint, bucket=bucket, root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True}],
    )


def _pixel(specs: Path, env: dict[str, str], *args: str) -> Run:
    """The commands after the interrupt, in this process: their subject is the convergence, not a signal."""
    return pixel_in_process([*args, "--specs", str(specs)], env)


@pytest.fixture
def env(seaweed: Any) -> dict[str, str]:
    return {**os.environ, **seaweed.env(), "NO_COLOR": "1"}


@pytest.fixture
def data_puts(seaweed: Any) -> Iterator[GateProxy]:
    with GateProxy(seaweed.endpoint, lambda method, path: method == "PUT" and "/datasets/" in path) as proxy:
        yield proxy


def test_ctrl_c_says_so_at_once_finishes_what_runs_and_reports_in_one_line(
    tmp_path: Path, seaweed: Any, bucket: str, env: dict[str, str], data_puts: GateProxy
) -> None:
    specs = _world(tmp_path, data_puts.endpoint, bucket, {f"f{i:03}.jsonl": 100 for i in range(FILES)})
    proc = subprocess.Popen(
        [PIXEL, "apply", "-q", "--auto-approve", "--parallelism", "2", "--specs", str(specs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    err, out = Lines(proc.stderr), Lines(proc.stdout)
    try:
        data_puts.wait_held(2)  # both workers are mid-upload
        proc.send_signal(signal.SIGINT)
        # Printed before anything in flight has finished: the gate is still shut.
        notice = err.wait_for("interrupt received")
        assert "finishing 2 in-flight actions, starting no more" in notice
        data_puts.gate.set()
        assert proc.wait(WAIT_S) == 1
    finally:
        data_puts.gate.set()
        proc.kill()
    stdout, stderr = out.all(), err.all()
    # Before: one "action skipped" warning per action on stderr and one "Not done (skipped)" line per action
    # in the report: 2 x 38 lines here, 2 x 1,731 in the issue. Now: one notice, and one line for all of them.
    assert [line for line in stderr if "skipped" in line] == []
    assert len(stderr) <= 4, stderr
    closing = max(i for i, line in enumerate(stdout) if line.startswith("Plan: "))
    assert len(stdout[closing + 1 :]) <= 2, stdout  # a blank line, then the one summary line
    assert stdout[-1].startswith(f"Apply interrupted: 2 done, 0 failed, {FILES - 2} actions not started"), stdout

    again = _pixel(specs, env, "apply", "--auto-approve")
    assert again.code == 0, again.err
    assert f"Apply complete! {FILES - 2} done" in again.out
    assert "No changes." in _pixel(specs, env, "plan").out


@pytest.mark.slow
def test_a_second_ctrl_c_stops_the_transfer_and_aborts_its_multipart_upload(
    tmp_path: Path, seaweed: Any, bucket: str, env: dict[str, str], s3_client: Any
) -> None:
    # 65 MiB: a multipart upload (64 MiB threshold) of 9 parts, more than the store's 6 part buffers, so its
    # reader is still reading when the parts are held.
    size = 65 * 2**20
    with GateProxy(seaweed.endpoint, lambda method, path: method == "PUT" and "partNumber=" in path) as parts:
        specs = _world(tmp_path, parts.endpoint, bucket, {"big.bin": size})
        proc = subprocess.Popen(
            [PIXEL, "apply", "-q", "--auto-approve", "--specs", str(specs)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        err, out = Lines(proc.stderr), Lines(proc.stdout)
        try:
            parts.wait_held(1)
            proc.send_signal(signal.SIGINT)
            err.wait_for("interrupt received")
            proc.send_signal(signal.SIGINT)
            assert "stopping 1 in-flight actions" in err.wait_for("second interrupt")
            parts.gate.set()
            assert proc.wait(WAIT_S) == 1
        finally:
            parts.gate.set()
            proc.kill()
        stdout = out.all()
        assert stdout[-1].startswith("Apply interrupted: 0 done, 0 failed, 0 actions not started, 1 stopped"), stdout
        # Nothing half-written is left behind: the upload was aborted, not completed, and its record is gone.
        assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert not any(k.startswith(("datasets/", ".pixel/uploads/")) for k in keys), keys

        again = _pixel(specs, env, "apply", "--auto-approve")
        assert again.code == 0, again.err
        assert "No changes." in _pixel(specs, env, "plan").out


def test_what_waited_on_a_stopped_transfer_is_counted_as_not_started() -> None:
    # Not "upload a failed": the transfer was stopped by the second Ctrl-C, and nothing failed.
    def action(key: str) -> Action:
        return Action(f"upload:s3:{key}", ActionKind.UPLOAD, Change.CREATE, "m", ObjectRef("s3", key), "new")

    first, then = action("a"), action("b")
    graph = build_graph(Plan(actions=(first, then), edges=((first.id, then.id),)))

    def run(a: Action) -> None:
        raise TransferStopped(a.id)

    result = execute(graph, run, parallelism=1)
    assert [(o.action.id, o.blocked_by) for o in result.skipped] == [(first.id, STOPPED), (then.id, NOT_STARTED)]
    report = render_apply_summary(result).strip().splitlines()
    assert "0 done, 0 failed, 1 action not started, 1 stopped." in report[-1]
    assert not any("failed" in line for line in report[:-1]), report
