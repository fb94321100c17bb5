"""What apply tells the user: a log event per failed action (every event under -v or JSON logs), then the
failures, what was not done grouped per cause, and one summary line."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from reconciler.apply.executor import DONE, FAILED, NOT_STARTED, STOPPED, ApplyResult, Outcome
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
        elif json_logs():
            self.log.info("action skipped", blocked_by=outcome.blocked_by, **fields)
        else:
            # The summary groups them per cause: one warning each would bury it (1,731 after a Ctrl-C).
            self.log.debug("action skipped", blocked_by=outcome.blocked_by, **fields)


def _not_done(skipped: Sequence[Outcome], untracked: int = 0) -> list[str]:
    """The skipped actions, one line per cause: 1,731 actions an interrupt kept from starting are one line.
    `untracked`: actions an interrupted streamed apply never read from its spill (it keeps counts, not outcomes)."""
    stopped = [o for o in skipped if o.blocked_by == STOPPED]
    waiting: dict[str, int] = defaultdict(int)
    for o in skipped:
        if o.blocked_by not in (STOPPED, NOT_STARTED):
            waiting[o.blocked_by] += 1
    lines = [f"  - {_actions(n)} not started: {printable(cause)} failed" for cause, n in sorted(waiting.items())]
    if untracked:
        lines.append(f"  - {_actions(untracked)} not started: the apply was interrupted")
    if stopped:
        lines.append(f"  - {_actions(len(stopped))} stopped in flight by the second interrupt (uploads aborted)")
    return lines


def _actions(n: int) -> str:
    return f"{n:,} action{'' if n == 1 else 's'}"


def render_apply_summary(result: ApplyResult, runner: ByteCounts | None = None) -> str:
    """Failures one per line (each has its own error); everything not done grouped per cause; one summary line."""
    return render_summary(
        len(result.done), result.failed, result.skipped, ok=result.ok, interrupted=result.interrupted, runner=runner
    )


def render_summary(
    done: int,
    failed: Sequence[Outcome],
    skipped: Sequence[Outcome],
    *,
    ok: bool,
    interrupted: bool,
    runner: ByteCounts | None,
    untracked: int = 0,
) -> str:
    """`render_apply_summary` from counts, for an apply that keeps no outcome of what it did (the streamed one):
    `done` actions, the failed and skipped outcomes, and `untracked` actions never started nor recorded."""
    lines = [""]
    moved = ""
    if runner is not None:
        moved = f" ({human_bytes(runner.bytes_uploaded)} uploaded, {human_bytes(runner.bytes_downloaded)} downloaded)"
    not_started = untracked + sum(1 for o in skipped if o.blocked_by != STOPPED)
    stopped = untracked + len(skipped) - not_started
    counts = f"{done:,} done, {len(failed):,} failed, {_actions(not_started)} not started"
    if stopped:
        counts += f", {stopped:,} stopped"
    if ok:
        lines.append(f"Apply complete! {counts}{moved}.")
        return "\n".join(lines) + "\n"
    if failed:
        lines.append("Failed:")
        for o in sorted(failed, key=lambda o: o.action.id):
            code = f" [{o.code}]" if o.code else ""
            lines.append(printable(f"  ✗ {o.action.kind.value} {o.action.target}{code}: {o.error}"))
        lines.append("")
    if grouped := _not_done(skipped, untracked):
        lines += ["Not done:", *grouped, ""]
    title = "Apply interrupted" if interrupted else "Apply failed"
    # No promise that another apply fixes it: a failure from a rule of the server's (a key it renames) or of
    # the local tree recurs; the next plan shows what is left and the findings say what a retry cannot fix.
    lines.append(f"{title}: {counts}{moved}. Run `pixel plan` to see what is left and any finding a retry cannot fix.")
    return "\n".join(lines) + "\n"
