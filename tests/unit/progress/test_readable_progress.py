"""Progress that stays readable: a byte-based ETA, log lines above the bar, events in a CI log, NO_COLOR in logs.

Every clock is injected; nothing waits.
"""

from __future__ import annotations

import io
import json
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler import logs, progress
from reconciler.apply.executor import DONE, Outcome
from reconciler.choices import LogFormat
from reconciler.logs import configure_logging, get_logger
from reconciler.model import (
    Action,
    ActionKind,
    Change,
    Desired,
    LocalStoreSpec,
    MappingSpec,
    ObjectRef,
    Plan,
    S3StoreSpec,
)
from reconciler.observe import StreamingHasher, observe
from reconciler.stores.base import Store
from reconciler.stores.local import LocalStore
from reconciler.stores.memory import MemoryStore

MIB = 2**20
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _action(i: int, size: int) -> Action:
    return Action(f"a{i}", ActionKind.UPLOAD, Change.CREATE, "m", ObjectRef("s3", f"k{i}"), "new", size=size)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    progress.configure(quiet=False)
    yield
    logs.set_line_writer(None)
    configure_logging(LogFormat.CONSOLE)


def test_two_large_objects_show_a_byte_based_eta_before_either_is_done() -> None:
    # Before: "applying [------] 0/2 objects 100.0 MiB/400.0 MiB" and no ETA until an object finished.
    now = [0.0]
    bar = progress.Bar("applying", total=2, total_bytes=400 * MIB, stream=Tty(), clock=lambda: now[0])
    now[0] = 10.0
    bar.advance(0, 100 * MIB)
    line = bar.line(now[0])
    assert "0/2 objects  100.0 MiB/400.0 MiB  10.0 MiB/s" in line
    assert "[######------------------]" in line  # a quarter of the bytes
    assert line.endswith("ETA 0:30")


def test_a_log_line_is_written_above_the_bar_never_over_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: the warning was written straight after the bar's text, on the bar's line.
    stream = Tty()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("NO_COLOR", "1")
    configure_logging(LogFormat.CONSOLE)
    now = [0.0]
    bar = progress.Bar("applying", total=4, total_bytes=4096, stream=stream, clock=lambda: now[0]).show()
    now[0] = 1.0
    bar.advance(1, 1024)
    get_logger("pixel.apply").warning("action retrying", key="k1")
    bar.close()
    # What a terminal shows: per line, what follows the last carriage return (erase-to-end-of-line dropped).
    screen = [line.split("\r")[-1].replace("\x1b[K", "") for line in stream.getvalue().split("\n")]
    logged = [line for line in screen if "action retrying" in line]
    assert len(logged) == 1
    # The log line has a line of its own, and the bar comes back on the next line.
    assert logged[0].endswith("key=k1") and "objects" not in logged[0]
    assert screen[screen.index(logged[0]) + 1].startswith("applying    [######")


def test_no_color_strips_colour_from_log_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: NO_COLOR plain plans, but log lines on a terminal kept their colours.
    stream = Tty()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.delenv("NO_COLOR", raising=False)
    configure_logging(LogFormat.CONSOLE)
    get_logger().warning("coloured", key="k")
    assert ANSI.search(stream.getvalue())
    stream.truncate(0)
    stream.seek(0)
    monkeypatch.setenv("NO_COLOR", "1")
    configure_logging(LogFormat.CONSOLE)
    get_logger().warning("plain", key="k")
    assert "plain" in stream.getvalue() and not ANSI.search(stream.getvalue())


class Events:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.events.append({"event": event, **fields})


def test_a_ci_log_gets_a_progress_event_every_interval_and_one_at_the_end() -> None:
    now = [0.0]
    log = Events()
    bar = progress.EventBar("applying", total=3, total_bytes=300, clock=lambda: now[0], log=log)
    for t in (1.0, 5.0, 9.0):  # within the first interval: no event yet
        now[0] = t
        bar.advance(0, 10)
    assert log.events == []
    now[0] = 12.0
    bar.advance(1, 70)  # 100 bytes in 12 s
    now[0] = 15.0
    bar.advance(1, 100)  # within 10 s of the last event
    now[0] = 30.0
    bar.close()
    assert [e["objects"] for e in log.events] == [1, 2]
    first = log.events[0]
    assert first == {
        "event": "progress", "what": "applying", "objects": 1, "objects_total": 3, "bytes": 100,
        "bytes_total": 300, "bytes_per_s": 8, "elapsed_s": 12.0, "eta_s": 24.0,
    }


def test_apply_progress_logs_events_under_json_logs_in_ci(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: in CI with --log-format json, nothing between the per-action events said how far an apply was.
    monkeypatch.setenv("CI", "true")
    configure_logging(LogFormat.JSON)
    plan = Plan(actions=(_action(1, 100), _action(2, 100)), edges=())
    with progress.apply_progress(_Null(), plan) as reporter:
        reporter.finished(Outcome(_action(1, 100), DONE))
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    done = [e for e in events if e["event"] == "progress"]
    assert done and done[-1]["objects"] == 1 and done[-1]["objects_total"] == 2 and done[-1]["bytes_total"] == 200


class _Null:
    def started(self, action: Action) -> None:
        pass

    def transferred(self, action: Action, nbytes: int) -> None:
        pass

    def retrying(self, action: Action, attempt: int, delay: float, error: Exception) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        pass


def test_hashing_reports_the_bytes_it_reads_as_it_reads_them(tmp_path: Path) -> None:
    # Before: one ("hashed", n) event per mapping once every file was hashed; nothing while it read them.
    (tmp_path / "raw").mkdir()
    sizes = {f"f{i}.bin": 1000 * (i + 1) for i in range(5)}
    for name, size in sizes.items():
        (tmp_path / "raw" / name).write_bytes(b"x" * size)
    desired = Desired(
        stores={"disk": LocalStoreSpec("disk", str(tmp_path)), "s3": S3StoreSpec("s3", "bucket")},
        mappings=(MappingSpec("raw", "disk", "raw", "s3", "data/raw/"),),
    )
    events: list[tuple[str, int]] = []
    lock = threading.Lock()

    def record(what: str, n: int) -> None:
        with lock:
            events.append((what, n))

    stores: dict[str, Store] = {"disk": LocalStore("disk", tmp_path), "s3": MemoryStore("s3")}
    observe(desired, stores, StreamingHasher(), progress=record)
    read = [n for what, n in events if what == "hashed_bytes"]
    assert sorted(read) == sorted(sizes.values())
    assert events.index(("hashed", 5)) > max(i for i, (what, _) in enumerate(events) if what == "hashed_bytes")


def test_the_observe_bar_shows_the_bytes_read_while_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Tty()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.delenv("CI", raising=False)
    with progress.observe_progress() as callback:
        assert callback is not None
        callback("hashed_bytes", 3 * MIB)
    assert "(3.0 MiB read)" in stream.getvalue()


def test_the_loader_draws_a_bar_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Opt-in: load_dataset draws nothing (a training loop has its own); tracked() around it draws one.
    monkeypatch.delenv("CI", raising=False)
    stream = Tty()
    records = [{"i": i} for i in range(1000)]
    assert list(progress.tracked(iter(records), every=100, stream=stream)) == records
    final = stream.getvalue().split("\r\x1b[K")[-1]
    assert final.startswith("reading     1,000 records"), final
    assert list(progress.tracked(iter(records), stream=io.StringIO())) == records  # not a terminal: no bar
