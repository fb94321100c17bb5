"""Keys and paths with control characters are shown escaped: a file name cannot forge a line of pixel's output."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from reconciler import logs
from reconciler.apply.executor import FAILED, ApplyResult, Outcome
from reconciler.apply.report import render_apply_summary
from reconciler.choices import LogFormat
from reconciler.keys import printable
from reconciler.logs import configure_logging
from reconciler.model import Action, ActionKind, Change, ObjectRef
from tests.hostile.input_world import World, make_world

FORGED = "Plan: 0 to upload, 0 to update, 0 to delete."
EVIL = f"evil\n\n{FORGED}\n"
NAMES = [EVIL, "tab\there.txt", "bidi\u202etxt.exe", "esc\x1b[2J.txt", "del\x7f.txt", "ctl\x01.txt", "iso\u2066x"]
# Anything a terminal or a markdown page would act on, or that splits a line: only "\n" between lines may remain.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def assert_nothing_forged(text: str) -> None:
    assert not CONTROL.search(text), repr(CONTROL.search(text))
    assert FORGED not in text.splitlines(), text
    assert not any(line.startswith("Error: forged") for line in text.splitlines()), text


def test_printable_escapes_visibly_and_is_idempotent() -> None:
    assert printable(EVIL) == "evil\\n\\nPlan: 0 to upload, 0 to update, 0 to delete.\\n"
    assert printable("a\tb\rc\x00d\x1be\x7ff\x9bg\u202eh\u2069i\u2028j") == (
        "a\\tb\\rc\\x00d\\x1be\\x7ff\\x9bg\\u202eh\\u2069i\\u2028j"
    )
    assert printable("back\\slash ünï ✓ 日本") == "back\\slash ünï ✓ 日本"
    assert printable(printable(EVIL)) == printable(EVIL)


@pytest.fixture
def world(tmp_path: Path, seaweed: Any, bucket: str) -> World:
    w = make_world(tmp_path, seaweed, bucket, {"name": "raw", "from": "disk:raw", "to": "s3:raw/"})
    (w.root / "raw").mkdir()
    for name in NAMES:
        (w.root / "raw" / name).write_bytes(b"x")
    return w


@pytest.mark.integration
def test_plan_show_and_explain_escape_keys(world: World) -> None:
    text = world.pixel("plan", "-out", str(world.plan))
    assert text.code == 0, text.err
    assert_nothing_forged(text.out)
    assert "+ raw/evil\\n\\nPlan: 0 to upload, 0 to update, 0 to delete.\\n  (upload" in text.out
    assert "+ raw/bidi\\u202etxt.exe" in text.out and "+ raw/esc\\x1b[2J.txt" in text.out
    assert "Plan: 7 to upload, 0 to update, 0 to delete." in text.out.splitlines()

    markdown = world.pixel("plan", "--format", "markdown")
    assert markdown.code == 0 and "raw/tab\\there.txt" in markdown.out
    assert_nothing_forged(markdown.out)

    as_json = world.pixel("plan", "--format", "json")
    assert {a["key"] for a in json.loads(as_json.out)["actions"]} == {f"raw/{n}" for n in NAMES}  # JSON stays exact

    for fmt in ("text", "markdown"):
        shown = world.pixel("show", "--format", fmt, str(world.plan))
        assert shown.code == 0 and "raw/del\\x7f.txt" in shown.out, shown.out
        assert_nothing_forged(shown.out)

    explained = world.pixel("explain", f"s3:raw/{EVIL}")
    assert explained.code == 0, explained.err
    assert "+ raw/evil\\n\\nPlan:" in explained.out
    assert_nothing_forged(explained.out)


@pytest.mark.integration
def test_error_messages_escape_paths(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    w = make_world(tmp_path, seaweed, bucket, {"name": "raw", "from": '"disk:gone\\nError: forged"', "to": "s3:raw/"})
    refused = w.pixel("plan")
    assert refused.code == 1
    assert "gone\\nError: forged does not exist" in refused.err, refused.err
    assert_nothing_forged(refused.err)


@pytest.mark.integration
def test_status_escapes_discovered_actor_names(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    w = make_world(tmp_path, seaweed, bucket, {"name": "raw", "from": "disk:raw", "to": "s3:raw/"})
    (w.root / "raw").mkdir()
    spec = w.specs / "specs.yaml"
    spec.write_text(
        spec.read_text()
        + "actors:\n  local: disk:actors\n  s3: s3:actors/\n  manifests: disk:manifests\n"
        + "  discover: '^(?P<id>\\d{4})_.+$'\n"
    )
    name = "0042_a\tb\x1b[2Jc\u202egpj"
    (w.root / "actors" / name / "training_data").mkdir(parents=True)
    (w.root / "actors" / name / "training_data" / f"{name}_0.jpg").write_bytes(b"jpg")
    status = w.pixel("status")
    assert status.code == 0, status.err
    assert "0042_a\\tb\\x1b[2Jc\\u202egpj" in status.out
    assert_nothing_forged(status.out)


@pytest.fixture
def logging_put_back(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """configure_logging keeps this test's captured stderr, which pytest closes after it: a later test in the same
    worker that logs without configuring (an in-process apply) wrote to the closed file and failed."""
    monkeypatch.setattr(logs, "_JSON", list(logs._JSON))
    monkeypatch.setattr(logs, "_STRUCTLOG_LATER", list(logs._STRUCTLOG_LATER))
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.mark.usefixtures("logging_put_back")
def test_the_apply_report_and_console_logs_escape_keys(capsys: pytest.CaptureFixture[str]) -> None:
    action = Action(
        id="upload:s3:raw/x", kind=ActionKind.UPLOAD, change=Change.CREATE, mapping="raw",
        target=ObjectRef("s3", f"raw/{EVIL}"), reason="new file",
    )
    result = ApplyResult([Outcome(action, FAILED, error=f"upload raw/{EVIL}: boom", code="InternalError")])
    report = render_apply_summary(result)
    assert "✗ upload s3:raw/evil\\n\\nPlan: 0 to upload" in report
    assert_nothing_forged(report)

    # structlog's console renderer shows a field's repr: escaped already (this keeps it so).
    stream = io.StringIO()
    configure_logging(LogFormat.CONSOLE)
    # stderr is no terminal here, so structlog is configured only when an event needs it (a traceback), without
    # colours: configure it so now, or an earlier test's coloured chain in this worker would still be in place.
    logs._configure_structlog(logging.INFO, colors=False)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=stream))
    structlog.get_logger("pixel.apply").warning("action retrying", key=f"s3:raw/{EVIL}", error=f"x\x1b[2J{EVIL}")
    assert "evil\\n\\nPlan" in stream.getvalue()
    assert_nothing_forged(stream.getvalue().rstrip("\n"))
