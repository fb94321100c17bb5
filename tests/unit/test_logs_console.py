"""Plain console lines (no colours) are rendered by reconciler/logs.py as structlog rendered them, without it."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler import logs
from reconciler.choices import LogFormat
from tests.unit.structlog_lines import logged_in_a_fresh_process, structlog_line

FIELD_NAMES = st.sampled_from(
    ["key", "n", "bytes_read", "aws_secret_access_key", "headers", "ü", "timestamp", "level", "logger", "logger_name"]
)
TEXT = st.text(max_size=20) | st.sampled_from(["a b", "k=v", "it's", 'say "x"', "tab\there", "", "plain"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
    | st.sampled_from(["Authorization: AWS4-HMAC-SHA256 Credential=AK/x, Signature=abc", b"bytes", 1 + 2j, (1, "a")]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"


@pytest.fixture
def restore() -> Iterator[None]:
    saved, rendered, later = structlog.get_config(), logs._JSON[0], logs._STRUCTLOG_LATER[0]
    yield
    structlog.configure(**saved)
    logs._JSON[0], logs._STRUCTLOG_LATER[0] = rendered, later


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # each example sets what it reads
@given(
    level=st.sampled_from(["debug", "info", "warning", "error"]),
    event=TEXT | st.just("sending X-Amz-Security-Token: FQoG-secret") | st.text(min_size=31, max_size=40),
    fields=st.dictionaries(FIELD_NAMES, VALUES, max_size=4),
)
@example(level="info", event="e", fields={"key": "k=v", "n": "tab\there", "headers": "it's", "logger": "x y"})
def test_a_console_line_is_the_one_structlog_rendered(
    restore: None, level: str, event: str, fields: dict[str, Any]
) -> None:
    out = io.StringIO()
    logs._JSON[0] = logs._Rendered(10, out, console=True)
    getattr(logs.get_logger("pixel"), level)(event, **fields)
    ours = out.getvalue()
    assert ours.endswith("\n")
    theirs = structlog_line(structlog.dev.ConsoleRenderer(colors=False), level, event, fields)
    assert re.match(STAMP + " ", ours) and re.match(STAMP + " ", theirs)
    # Byte for byte once the clock is out of it: padding, key order, which values are quoted, redaction.
    assert re.sub(STAMP, "", ours.rstrip("\n"), count=1) == re.sub(STAMP, "", theirs, count=1)


def test_an_event_with_an_exception_is_still_structlogs(restore: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging(LogFormat.CONSOLE)  # captured stderr: no terminal, so plain lines
    assert logs._JSON[0] is not None and logs._JSON[0].console
    try:
        raise ValueError("boom")
    except ValueError:
        logs.get_logger("pixel.test").error("failed", exc_info=True)
    err = capsys.readouterr().err
    assert "failed" in err and "ValueError" in err and "boom" in err


def test_a_plain_console_run_never_imports_structlog() -> None:
    err = logged_in_a_fresh_process("console", "read=0, note='a b'")
    assert re.fullmatch(STAMP + r" \[info     \] local files hashed {13}note='a b' read=0\n", err)
