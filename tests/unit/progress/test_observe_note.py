"""The observing bar's note ("N local files hashed (X read)") is worded when the bar is drawn, not per file.

The hashing threads call the observe callback once per file read: 10,000 small files were 10,000 notes
formatted for the handful of progress events a CI log gets.
"""

from __future__ import annotations

import json
import math

import pytest
import structlog

from reconciler import logs, progress
from reconciler.choices import LogFormat
from reconciler.logs import configure_logging
from reconciler.units import human_bytes


def test_the_note_is_worded_per_progress_event_and_says_the_counts_at_that_moment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(progress, "EVENT_S", math.inf)  # no event but the closing one, whatever the clock says
    worded: list[int] = []

    def counted(n: int) -> str:
        worded.append(n)
        return human_bytes(n)

    monkeypatch.setattr(progress, "human_bytes", counted)
    monkeypatch.setitem(logs._FORMAT, "name", logs._FORMAT["name"])  # back to what it was, after
    configure_logging(LogFormat.JSON)
    try:
        with progress.observe_progress() as callback:
            assert callback is not None
            for _ in range(1000):
                callback("hashed_bytes", 1024)
            callback("listed", 1000)
            callback("hashed", 1000)
    finally:
        structlog.reset_defaults()
    assert worded == [1000 * 1024]  # once, for the closing event
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["progress"]
    assert events[0]["note"] == "1,000 local files hashed (1000.0 KiB read)"
    assert events[0]["objects"] == 1000 and events[0]["bytes"] == 1000 * 1024
