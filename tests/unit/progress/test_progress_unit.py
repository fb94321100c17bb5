"""Progress bars: when they appear, what a line says, and that apply's reporter still logs every event."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from reconciler import progress
from reconciler.apply.executor import DONE, FAILED, Outcome
from reconciler.apply.runner import ActionRunner
from reconciler.choices import OutputFormat
from reconciler.model import Action, ActionKind, Change, ObjectRef, Plan
from reconciler.stores.base import StoreError
from reconciler.stores.local import LocalStore
from reconciler.stores.memory import MemoryStore


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _action(i: int, size: int = 1024) -> Action:
    return Action(f"a{i}", ActionKind.UPLOAD, Change.CREATE, "m", ObjectRef("s3", f"k{i}"), "new", size=size)


@pytest.fixture(autouse=True)
def not_quiet() -> None:
    progress.configure(quiet=False)


def test_enabled_only_on_a_tty_outside_ci_not_quiet_and_not_json() -> None:
    assert progress.enabled(Tty(), environ={})
    assert not progress.enabled(io.StringIO(), environ={})
    assert not progress.enabled(Tty(), environ={"CI": "true"})
    assert progress.enabled(Tty(), environ={"CI": "false"})
    assert not progress.enabled(Tty(), environ={}, output_format=OutputFormat.JSON)
    progress.configure(quiet=True)
    assert not progress.enabled(Tty(), environ={})


def test_a_line_shows_objects_bytes_rate_and_eta() -> None:
    now = [100.0]
    bar = progress.Bar("applying", total=4, total_bytes=4096, stream=Tty(), clock=lambda: now[0])
    now[0] = 102.0
    bar.advance(1, 1024)
    line = bar.line(now[0])
    assert line.startswith("applying    [######------------------]  1/4 objects  1.0 KiB/4.0 KiB  512 B/s")
    assert line.endswith("ETA 0:06")


def test_redraws_are_throttled_but_the_last_state_is_always_drawn() -> None:
    now = [0.0]
    stream = Tty()
    bar = progress.Bar("observing", stream=stream, clock=lambda: now[0])
    now[0] = 1.0
    for _ in range(50):
        bar.advance()
    assert stream.getvalue().count("\r") == 1  # the first advance draws, the rest fall inside REFRESH_S
    bar.close()
    assert stream.getvalue().rstrip("\n").endswith("observing   50 objects  50.0 obj/s")


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def started(self, action: Action) -> None:
        self.events.append(f"started {action.id}")

    def transferred(self, action: Action, nbytes: int) -> None:
        self.events.append(f"transferred {action.id} {nbytes}")

    def retrying(self, action: Action, attempt: int, delay: float, error: StoreError) -> None:
        self.events.append(f"retrying {action.id} {attempt}")

    def finished(self, outcome: Outcome) -> None:
        self.events.append(f"finished {outcome.action.id} {outcome.status}")


def test_progress_reporter_forwards_every_event_and_counts_what_was_not_done() -> None:
    inner, stream = Recorder(), Tty()
    reporter = progress.ProgressReporter(inner, progress.Bar("applying", total=2, total_bytes=2048, stream=stream))
    reporter.started(_action(1))
    reporter.retrying(_action(1), 1, 0.1, StoreError("slow down"))
    reporter.finished(Outcome(_action(1), DONE))
    reporter.finished(Outcome(_action(2), FAILED, "boom"))
    reporter.close()
    assert inner.events == ["started a1", "retrying a1 1", "finished a1 done", "finished a2 failed"]
    assert "2/2 objects  1.0 KiB/2.0 KiB" in stream.getvalue() and "1 not done" in stream.getvalue()


def test_a_large_transfer_moves_the_bar_while_it_runs_and_counts_each_byte_once() -> None:
    inner, stream = Recorder(), Tty()
    bar = progress.Bar("applying", total=2, total_bytes=3 * 1024, stream=stream)
    reporter = progress.ProgressReporter(inner, bar)
    big, small = _action(1, size=2048), _action(2, size=1024)
    reporter.transferred(big, 1500)
    assert bar.bytes == 1500 and bar.count == 0  # moving before the action is done
    reporter.transferred(big, 1500)  # a retry reads the source again: clamped to the action's size
    assert bar.bytes == 2048
    reporter.finished(Outcome(big, DONE))
    reporter.transferred(small, 600)
    reporter.finished(Outcome(small, FAILED, "boom"))  # what a failed transfer read is taken back
    assert (bar.count, bar.bytes) == (2, 2048)
    assert inner.events[:2] == ["transferred a1 1500", "transferred a1 1500"]


def test_the_runner_reports_what_a_transfer_reads_from_its_source(tmp_path: Path) -> None:
    body = b"x" * 20_000_000
    seen: list[int] = []
    disk, s3 = LocalStore("disk", tmp_path), MemoryStore("s3")
    s3.put("f.bin", body)
    action = Action(
        "d",
        ActionKind.DOWNLOAD,
        Change.CREATE,
        "m",
        ObjectRef("disk", "f.bin"),
        "new",
        source=ObjectRef("s3", "f.bin"),
        size=len(body),
        md5=hashlib.md5(body).hexdigest(),
    )
    ActionRunner({"disk": disk, "s3": s3}, on_bytes=lambda a, n: seen.append(n))(action)
    assert sum(seen) == len(body) and len(seen) > 1  # chunk by chunk, not once at the end
    assert (tmp_path / "f.bin").read_bytes() == body


def test_apply_progress_is_the_inner_reporter_when_nobody_watches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    inner = Recorder()
    with progress.apply_progress(inner, Plan(actions=(_action(1),), edges=())) as reporter:
        assert reporter is inner
    with progress.observe_progress() as callback:
        assert callback is None
