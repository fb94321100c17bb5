"""The apply's main thread writes its per-action JSON log lines a pass at a time, not one write each.

Each write released the GIL to the workers and waited to take it back (141 futex calls per small upload);
proof by count of flushes, with every line still there, once.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler import logs
from reconciler.apply import RetryPolicy, execute
from reconciler.apply.report import LogReporter
from reconciler.choices import LogFormat
from reconciler.model import Action, ActionKind, Change, ObjectRef, Plan
from reconciler.plan.graph import build_graph

NO_SLEEP = RetryPolicy(attempts=1, sleep=lambda s: None, rng=random.Random(0))


class Writes(io.RawIOBase):
    """What reaches the descriptor: each system call's lines."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.calls.append(bytes(data).decode().splitlines())
        return len(data)


class Stderr(io.TextIOWrapper):
    """A line-buffered text stream over Writes, as Python's stderr is on a pipe (CI's log)."""

    def __init__(self) -> None:
        self.raw_writes = Writes()
        super().__init__(io.BufferedWriter(self.raw_writes), encoding="utf-8", line_buffering=True)

    @property
    def batches(self) -> list[list[str]]:
        return self.raw_writes.calls

    def text(self) -> str:
        return "".join(line + "\n" for call in self.batches for line in call)


@pytest.fixture
def stream() -> Iterator[Stderr]:
    saved_format, saved = dict(logs._FORMAT), logs._JSON[0]
    logs.configure_logging(LogFormat.JSON)
    out = Stderr()
    logs._JSON[0] = logs._Rendered(20, out)
    yield out
    logs._FORMAT.update(saved_format)
    logs._JSON[0] = saved


def upload(i: int) -> Action:
    return Action(f"u{i}", ActionKind.UPLOAD, Change.CREATE, "m", ObjectRef("s", f"k{i}"), "test", size=100)


def test_the_first_actions_started_go_out_in_one_write(stream: Stderr) -> None:
    actions = [upload(i) for i in range(8)]
    result = execute(build_graph(Plan(tuple(actions), ())), lambda a: None, parallelism=4, retry=NO_SLEEP,
                     reporter=LogReporter())
    assert result.ok
    first = [json.loads(line) for line in stream.batches[0]]
    assert [(e["event"], e["key"]) for e in first] == [("action started", f"s:k{i}") for i in range(4)]
    # Each later pass settles at least one action: at most one write per action finished, against two.
    assert len(stream.batches) <= 1 + len(actions) < 2 * len(actions)
    events = [json.loads(line) for batch in stream.batches for line in batch]
    for kind in ("action started", "action finished"):
        assert sorted(e["key"] for e in events if e["event"] == kind) == sorted(f"s:k{i}" for i in range(8))
    assert len(events) == 16


def test_lines_held_are_written_when_the_pass_raises_and_other_threads_are_not_held(stream: Stderr) -> None:
    import threading

    log = logs.get_logger("pixel.test")
    with pytest.raises(RuntimeError), logs.lines_held():
        log.info("first")
        other = threading.Thread(target=lambda: log.info("from a worker"))
        other.start()
        other.join()
        with logs.lines_held():
            log.info("nested")
        assert [json.loads(line)["event"] for line in stream.text().splitlines()] == ["from a worker"]
        raise RuntimeError("the pass failed")
    assert [[json.loads(line)["event"] for line in batch] for batch in stream.batches] == [
        ["from a worker"], ["first", "nested"]
    ]
