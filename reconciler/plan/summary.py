"""Counting a plan's actions the way every renderer reports them."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model import Action, ActionKind, Change, Plan


@dataclass(frozen=True, slots=True)
class Tally:
    count: int = 0
    bytes: int = 0


def category(action: Action) -> str:
    """The summary bucket an action counts in: upload, download, update, delete, rehash, ..."""
    if action.change is Change.UPDATE and action.kind in (ActionKind.UPLOAD, ActionKind.DOWNLOAD):
        return "update"
    return action.kind.value


# Order in which the summary line lists them; upload, update and delete always appear.
ORDER = (
    "upload",
    "download",
    "update",
    "copy",
    "move",
    "rehash",
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


def summary_line(plan: Plan) -> str:
    if not plan.actions:
        return "No changes. Storage matches the specs."
    counts = tally(plan)
    parts = [f"{counts[name].count} to {name}" for name in ORDER if name in ALWAYS or counts[name].count]
    return "Plan: " + ", ".join(parts) + "."
