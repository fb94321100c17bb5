"""What apply tells the user: a log event per failed or skipped action (per action under -v or JSON logs),
then a summary of done / failed / skipped."""

from __future__ import annotations

from reconciler.apply.executor import DONE, FAILED, ApplyResult, Outcome
from reconciler.apply.runner import ByteCounts
from reconciler.keys import printable
from reconciler.logs import get_logger, json_logs
from reconciler.model import Action
from reconciler.stores.base import StoreError
from reconciler.units import human_bytes


class LogReporter:
    def __init__(self) -> None:
        self.log = get_logger("pixel.apply")

    def started(self, action: Action) -> None:
        fields = dict(action=action.kind.value, key=str(action.target), bytes=action.size)
        if json_logs():
            self.log.info("action started", **fields)
        else:
            self.log.debug("action started", **fields)

    def transferred(self, action: Action, nbytes: int) -> None:
        pass  # per-chunk events would flood the log; `action finished` carries the bytes

    def retrying(self, action: Action, attempt: int, delay: float, error: StoreError) -> None:
        self.log.warning(
            "action retrying",
            action=action.kind.value,
            key=str(action.target),
            attempt=attempt,
            delay_s=round(delay, 3),
            code=error.code,
            error=str(error),
        )

    def finished(self, outcome: Outcome) -> None:
        action = outcome.action
        fields = dict(
            action=action.kind.value,
            key=str(action.target),
            status=outcome.status,
            bytes=action.size,
            seconds=round(outcome.seconds, 3),
            retries=max(0, outcome.attempts - 1),
        )
        if outcome.status == DONE:
            # One console line per done action costs the main thread more than a small upload's own work
            # (rclone, too, names files only with -v): people get the bar and the summary, -v the lines,
            # and CI's JSON log every event.
            if json_logs():
                self.log.info("action finished", **fields)
            else:
                self.log.debug("action finished", **fields)
        elif outcome.status == FAILED:
            self.log.error("action failed", code=outcome.code, error=outcome.error, **fields)
        else:
            self.log.warning("action skipped", blocked_by=outcome.blocked_by, **fields)


def render_apply_summary(result: ApplyResult, runner: ByteCounts | None = None) -> str:
    lines = [""]
    moved = ""
    if runner is not None:
        moved = f" ({human_bytes(runner.bytes_uploaded)} uploaded, {human_bytes(runner.bytes_downloaded)} downloaded)"
    counts = f"{len(result.done)} done, {len(result.failed)} failed, {len(result.skipped)} skipped"
    if result.ok:
        lines.append(f"Apply complete! {counts}{moved}.")
        return "\n".join(lines) + "\n"
    title = "Apply interrupted" if result.interrupted else "Apply failed"
    lines.append(f"{title}: {counts}{moved}.")
    if result.failed:
        lines.append("")
        lines.append("Failed:")
        for o in sorted(result.failed, key=lambda o: o.action.id):
            code = f" [{o.code}]" if o.code else ""
            lines.append(printable(f"  ✗ {o.action.kind.value} {o.action.target}{code}: {o.error}"))
    if result.skipped:
        lines.append("")
        lines.append("Not done (skipped):")
        for o in sorted(result.skipped, key=lambda o: o.action.id):
            because = "apply was interrupted" if o.blocked_by == "interrupted" else f"{o.blocked_by} failed"
            lines.append(printable(f"  - {o.action.kind.value} {o.action.target}: {because}"))
    lines.append("")
    # No promise that another apply fixes it: a failure from a rule of the server's (a key it renames) or of
    # the local tree recurs; the next plan shows what is left and the findings say what a retry cannot fix.
    lines.append("Run `pixel plan` to see the remaining work and any finding a retry cannot fix.")
    return "\n".join(lines) + "\n"
