"""`--log-format json` lines are rendered by reconciler/logs.py as structlog rendered them, without structlog."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import logs
from tests.unit.structlog_lines import logged_in_a_fresh_process, structlog_line

FIELD_NAMES = st.sampled_from(["key", "n", "bytes_read", "aws_secret_access_key", "headers", "ü", "timestamp"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["Authorization: AWS4-HMAC-SHA256 Credential=AK/x, Signature=abc", b"bytes", 1 + 2j]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@pytest.fixture
def restore() -> Iterator[None]:
    saved, rendered = structlog.get_config(), logs._JSON[0]
    yield
    structlog.configure(**saved)
    logs._JSON[0] = rendered


def _without_time(line: str) -> dict[str, Any]:
    record = dict(json.loads(line))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", record.pop("timestamp"))
    return record


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # each example sets what it reads
@given(
    level=st.sampled_from(["debug", "info", "warning", "error"]),
    event=st.text(max_size=30) | st.just("sending X-Amz-Security-Token: FQoG-secret"),
    fields=st.dictionaries(FIELD_NAMES, VALUES, max_size=4),
)
def test_a_json_line_is_the_one_structlog_rendered(
    restore: None, level: str, event: str, fields: dict[str, Any]
) -> None:
    out = io.StringIO()
    logs._JSON[0] = logs._Rendered(10, out)
    getattr(logs.get_logger("pixel"), level)(event, **fields)
    ours = out.getvalue()
    assert ours.endswith("\n") and ours.count("\n") == 1
    theirs = structlog_line(structlog.processors.JSONRenderer(sort_keys=True), level, event, fields)
    assert _without_time(ours) == _without_time(theirs)
    # Byte for byte, once the clock is out of it: key order, spacing, json's escaping.
    assert re.sub(r'"timestamp": "[^"]*"', "", ours.rstrip("\n")) == re.sub(r'"timestamp": "[^"]*"', "", theirs)


def test_json_logging_filters_by_level_and_interpolates(restore: None) -> None:
    out = io.StringIO()
    logs._JSON[0] = logs._Rendered(20, out)
    log = logs.get_logger("pixel.test")
    log.debug("hidden")
    log.info("%s of %s", 3, 4)
    log.warning("%(n)s left", {"n": 2})
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["3 of 4", "2 left"]


def test_a_run_logging_json_never_imports_structlog() -> None:
    assert json.loads(logged_in_a_fresh_process("json", "read=0"))["event"] == "local files hashed"
