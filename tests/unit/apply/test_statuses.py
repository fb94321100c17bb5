"""The status enums are the words CI and the history file read: their JSON is the plain strings it always was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.apply.executor import DONE, FAILED, SKIPPED, ApplyResult, Outcome
from reconciler.apply.history import last_apply, record_apply
from reconciler.apply.jsonreport import ReportStatus, render_json, report_dict
from reconciler.model import Action, ActionKind, Change, ObjectRef, S3StoreSpec


def _action(i: int) -> Action:
    return Action(f"a{i}", ActionKind.UPLOAD, Change.CREATE, "m", ObjectRef("s3", f"k{i}"), "new", size=1)


def test_the_json_report_says_done_failed_skipped_as_plain_strings() -> None:
    result = ApplyResult(
        [
            Outcome(_action(1), DONE),
            Outcome(_action(2), FAILED, "boom", "500"),
            Outcome(_action(3), SKIPPED, blocked_by="a2"),
        ]
    )
    text = render_json(report_dict(result))
    report = json.loads(text)
    assert report["status"] == "failed" and '"status": "failed"' in text
    assert report["counts"] == {"done": 1, "failed": 1, "skipped": 1}
    assert [r["id"] for r in report["done"]] == ["a1"]
    assert report["failed"][0]["code"] == "500" and report["skipped"][0]["blocked_by"] == "a2"
    assert json.loads(render_json(report_dict(None, status=ReportStatus.NO_CHANGES)))["status"] == "no-changes"
    assert json.loads(render_json(report_dict(ApplyResult(interrupted=True))))["status"] == "interrupted"


def test_the_history_record_counts_under_the_plain_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXEL_CACHE_DIR", str(tmp_path))
    bucket = S3StoreSpec(name="lake", bucket="b")
    record_apply([bucket], counts={DONE: 2, FAILED: 0, SKIPPED: 1}, targets=(), ok=True)
    recorded = last_apply([bucket])
    assert recorded is not None and recorded["counts"] == {"done": 2, "failed": 0, "skipped": 1}
    files = list(tmp_path.rglob("*.json"))
    assert len(files) == 1 and '"done": 2' in files[0].read_text()
