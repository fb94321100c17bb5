"""Counting a plan's actions the way every renderer reports them."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model import Action, ActionKind, Change, Plan
from reconciler.plan.render_findings import group_findings


@dataclass(frozen=True, slots=True)
class Tally:
    count: int = 0
    bytes: int = 0


def category(action: Action) -> str:
    """The summary bucket an action counts in: upload, download, update, delete, rehash, ..."""
    if action.change is Change.UPDATE and action.kind in (ActionKind.UPLOAD, ActionKind.DOWNLOAD):
        return "update"
    return action.kind.value


# Order in which the summary line lists them: every kind of ActionKind has a place, so the line's counts add up
# to the plan's actions (and to apply's "N done"); upload, update and delete appear even at zero, the rest when
# present, in the summary line and the markdown table alike.
ORDER = (
    "upload",
    "download",
    "update",
    "copy",
    "move",
    "rehash",
    "verify",
    "release-local",
    "compile",
    "write-manifest",
    "delete",
)
ALWAYS = frozenset({"upload", "update", "delete"})


def tally(plan: Plan) -> dict[str, Tally]:
    counts: dict[str, list[int]] = {name: [0, 0] for name in ORDER}
    for action in plan.actions:
        slot = counts.setdefault(category(action), [0, 0])
        slot[0] += 1
        slot[1] += action.size
    return {name: Tally(c, b) for name, (c, b) in counts.items()}


def _counts(plan: Plan) -> str:
    counts = tally(plan)
    return ", ".join(f"{counts[name].count:,} to {name}" for name in shown(counts))


def shown(counts: dict[str, Tally]) -> list[str]:
    """The categories a summary lists, in ORDER: the three always shown, and every other one present."""
    extra = [name for name in counts if name not in ORDER and counts[name].count]
    return [name for name in ORDER if name in ALWAYS or counts[name].count] + sorted(extra)


def summary_line(plan: Plan) -> str:
    """The actions counted: "Plan: 3 to upload, 0 to update, 0 to delete." (or "No changes to apply.")."""
    if not plan.actions:
        return "No changes to apply."
    return f"Plan: {_counts(plan)}."


def _several(n: int, what: str, where: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'} {where}"


def closing_line(plan: Plan, *, findings_where: str = "above") -> str:
    """The last word on a rendered plan, saying exactly what is true: refused (errors), changes, findings.

    "No changes. Storage matches the specs." only when there is nothing to do and nothing to report.
    `findings_where`: where the renderer lists the findings relative to this line (errors come before it).
    """
    # Counted per cause, as the renderers list them: twelve images one actor lacks are one finding to act on.
    causes = len(group_findings(plan.findings))
    findings = _several(causes, "finding", findings_where) if plan.findings else ""
    if plan.errors:
        line = "Plan refused: " + _several(len(plan.errors), "error", "above") + "; nothing will be applied"
        if plan.actions:
            line += f" (it would: {_counts(plan)})"
        return f"{line}; {findings}." if findings else f"{line}."
    if plan.actions:
        return f"{summary_line(plan)} {findings[0].upper()}{findings[1:]}." if findings else summary_line(plan)
    if findings:
        return f"No changes to apply; {findings}."
    return "No changes. Storage matches the specs."
