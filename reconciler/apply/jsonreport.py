"""apply's final report as JSON for CI (`pixel apply --format json`): done, failed (with the server's code), skipped."""

from __future__ import annotations

import enum
import json
from typing import Any

from reconciler.apply.executor import DONE, FAILED, SKIPPED, ApplyResult, Outcome, OutcomeStatus
from reconciler.apply.runner import ByteCounts

REPORT_VERSION = 1


class ReportStatus(enum.StrEnum):
    """The report's top-level `status`: how the apply as a whole ended."""

    OK = "ok"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    ERROR = "error"  # refused before anything ran (`errors` says why)
    NO_CHANGES = "no-changes"  # a saved plan with nothing to do


def _outcome(o: Outcome) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": o.action.id,
        "kind": o.action.kind.value,
        "mapping": o.action.mapping,
        "store": o.action.target.store,
        "key": o.action.target.key,
        "size": o.action.size,
    }
    if o.status == SKIPPED:
        row["blocked_by"] = o.blocked_by
    else:
        row["attempts"] = o.attempts
        row["seconds"] = round(o.seconds, 3)
    if o.status == FAILED:
        row["code"] = o.code
        row["error"] = o.error
    return row


def _status(result: ApplyResult) -> ReportStatus:
    if result.interrupted:
        return ReportStatus.INTERRUPTED
    return ReportStatus.OK if result.ok else ReportStatus.FAILED


def report_dict(
    result: ApplyResult | None,
    *,
    spec_digest: str = "",
    runner: ByteCounts | None = None,
    status: ReportStatus | None = None,
    errors: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`result` is None when apply stopped before running anything (`status` then says why)."""
    outcomes = result.outcomes if result is not None else []

    def rows(which: OutcomeStatus) -> list[dict[str, Any]]:
        return [_outcome(o) for o in sorted(outcomes, key=lambda o: o.action.id) if o.status == which]

    done, failed, skipped = rows(DONE), rows(FAILED), rows(SKIPPED)
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "status": status or (_status(result) if result is not None else ReportStatus.OK),
        "spec_digest": spec_digest,
        "counts": {"done": len(done), "failed": len(failed), "skipped": len(skipped)},
        "bytes": {
            "uploaded": runner.bytes_uploaded if runner else 0,
            "downloaded": runner.bytes_downloaded if runner else 0,
        },
        "done": done,
        "failed": failed,
        "skipped": skipped,
        "errors": list(errors),
    }
    return report


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
