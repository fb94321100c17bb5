"""The big-file case times each tool on even terms: dirty pages flushed before each, and the first place rotating.

A tool timed while the kernel writes back the tree generated just before it (or the server's writes of the
tool before) waits in iowait with both cores idle; the bench had pixel always first, so it always paid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench import cases
from bench.measure import Run
from bench.tools import Target


@dataclass
class FakeServer:
    endpoint: str = "http://127.0.0.1:1"
    buckets: list[str] = field(default_factory=list)

    def create_bucket(self, name: str) -> str:
        self.buckets.append(name)
        return name

    def delete_bucket(self, name: str) -> None:
        self.buckets.remove(name)

    def child_env(self) -> dict[str, str]:
        return {}


@dataclass
class FakeTool:
    name: str
    events: list[str]

    def upload(self, t: Target) -> Run:
        self.events.append(self.name)
        return Run(seconds=1.0, peak_rss_mib=1.0, returncode=0, stdout="", stderr="")


@pytest.mark.parametrize("run_no", [1, 2, 3, 4])
def test_each_tool_is_timed_after_a_flush_and_the_first_place_rotates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_no: int
) -> None:
    events: list[str] = []
    monkeypatch.setattr(os, "sync", lambda: events.append("sync"))
    monkeypatch.setattr(cases, "settle", lambda tree: None)  # no file here needs the hash cache's racy window
    tools = [FakeTool(name, events) for name in ("pixel", "aws", "rclone")]
    server = FakeServer()

    out = cases.big_files(server, tools, tmp_path, count=1, mib=1, run_no=run_no)  # type: ignore[arg-type]

    order = ["pixel", "aws", "rclone"]
    turn = (run_no - 1) % 3
    expected = order[turn:] + order[:turn]
    assert events == [e for name in expected for e in ("sync", name)]
    assert set(out) == {f"big_upload_{name}" for name in order}
    assert server.buckets == []
