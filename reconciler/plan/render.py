"""Plans as text for a terminal or a log: Terraform's + ~ - with a closing summary line.

Actions are grouped per mapping (or tier, for dataset and manifest actions); a move
reads `a => b`. With `compact`, a run of more than COMPACT_THRESHOLD actions of one
kind under one prefix folds into one line, so a review of 8,000 new shards stays
one screen: `+ 8,412 objects under datasets/gdrive/raw/cot/ (3.1 GiB)`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from reconciler.keys import printable
from reconciler.model import Action, ActionKind, Change, Desired, Finding, Plan
from reconciler.plan.render_findings import FindingGroup, group_findings, group_text
from reconciler.plan.summary import closing_line
from reconciler.units import human_bytes

SYMBOL = {Change.CREATE: "+", Change.UPDATE: "~", Change.DELETE: "-", Change.READ: "~"}
COLOR = {Change.CREATE: "green", Change.UPDATE: "yellow", Change.DELETE: "red", Change.READ: "cyan"}
# Releasing a local copy deletes no data (S3 keeps the verified object): it must not read as a delete's `-`.
KIND_SYMBOL = {ActionKind.RELEASE_LOCAL: "<"}
KIND_COLOR = {ActionKind.RELEASE_LOCAL: "magenta"}
_ANSI = {
    "green": "\x1b[32m",
    "yellow": "\x1b[33m",
    "red": "\x1b[31m",
    "cyan": "\x1b[36m",
    "magenta": "\x1b[35m",
    "bold": "\x1b[1m",
}
_RESET = "\x1b[0m"

# Runs at most this long are listed in full even with --compact: folding three lines into one hides more than it saves.
COMPACT_THRESHOLD = 10


def _paint(text: str, color: str, enabled: bool) -> str:
    return f"{_ANSI[color]}{text}{_RESET}" if enabled else text


def target_text(action: Action) -> str:
    """The key as a reviewer reads it, control characters escaped: a move shows where from and where to."""
    if action.kind is ActionKind.MOVE and action.source is not None:
        return printable(f"{action.source.key} => {action.target.key}")
    return printable(action.target.key)


def symbol(action: Action) -> str:
    return KIND_SYMBOL.get(action.kind) or SYMBOL[action.change]


def painted_symbol(action: Action, color: bool) -> str:
    return _paint(symbol(action), KIND_COLOR.get(action.kind) or COLOR[action.change], color)


def action_line(action: Action, color: bool = False) -> str:
    symbol = painted_symbol(action, color)
    size = f", {human_bytes(action.size)}" if action.size and action.change is not Change.DELETE else ""
    return f"  {symbol} {target_text(action)}  ({action.kind.value}{size}: {printable(action.reason)})"


def prefix_of(key: str) -> str:
    """The directory part of a key, with its trailing slash ("" at the root)."""
    cut = key.rfind("/")
    return key[: cut + 1] if cut >= 0 else ""


def heading(desired: Desired | None, mapping: str) -> str:
    if desired is not None:
        for spec in desired.mappings:
            if spec.name == mapping:
                src = f"{spec.local_store}:{spec.local_path}"
                dst = f"{spec.s3_store}:{spec.s3_prefix}"
                arrow = {"local": "→", "s3": "←", "none": "↔"}[spec.authority.value]
                return printable(f"{mapping}: {src} {arrow} {dst}")
        for tier in desired.tiers:
            if tier.name == mapping:
                return printable(f"{mapping}: tier {tier.store}:{tier.prefix}")
    return printable(mapping)


def sort_key(action: Action) -> tuple[bool, str, str]:
    # A compile reads first in its group: the shard deletes listed with it wait for it.
    return (action.kind is not ActionKind.COMPILE, action.target.key, action.kind.value)


def group_by_mapping(actions: Iterable[Action]) -> dict[str, list[Action]]:
    by_mapping: dict[str, list[Action]] = defaultdict(list)
    for action in actions:
        by_mapping[action.mapping].append(action)
    return {name: sorted(by_mapping[name], key=sort_key) for name in sorted(by_mapping)}


def compact_lines(actions: list[Action], color: bool, threshold: int = COMPACT_THRESHOLD) -> list[str]:
    """One line per action, except runs longer than `threshold` of one kind under one prefix: one line per run."""
    runs: dict[tuple[str, Change, str], list[Action]] = defaultdict(list)
    for action in actions:
        runs[(action.kind.value, action.change, prefix_of(action.target.key))].append(action)
    folded = {key for key, run in runs.items() if len(run) > threshold}
    lines: list[str] = []
    emitted: set[tuple[str, Change, str]] = set()
    for action in actions:
        key = (action.kind.value, action.change, prefix_of(action.target.key))
        if key not in folded:
            lines.append(action_line(action, color))
        elif key not in emitted:
            emitted.add(key)
            run = runs[key]
            symbol = painted_symbol(action, color)
            where = printable(key[2]) or "the root"
            size = f" ({human_bytes(sum(a.size for a in run))})" if action.change is not Change.DELETE else ""
            lines.append(f"  {symbol} {len(run):,} objects under {where}{size}  [{action.kind.value}]")
    return lines


def finding_line(finding: Finding) -> str:
    """One finding on its own (`pixel explain KEY`)."""
    scope = f"[{finding.mapping}] " if finding.mapping else ""
    return "  ! " + printable(f"{finding.kind.value}: {scope}{finding.key}: {finding.message}")


def group_line(group: FindingGroup) -> str:
    """One cause in a plan: the findings of one kind that differ only by their key, on one line."""
    return "  ! " + printable(group_text(group))


def targets_note(plan: Plan) -> str | None:
    """Terraform's warning for -target: the rest of the specs was not looked at."""
    if not plan.targets:
        return None
    return (
        f"Targeted plan: only {', '.join(plan.targets)} (--target); the rest of the specs was not observed, "
        "and the registry and inventory are left for the next full apply."
    )


def render_text(
    plan: Plan, desired: Desired | None = None, *, color: bool = False, compact: bool = False, brief: bool = False
) -> str:
    """`brief`: only the errors and the closing line (apply's preview under -q)."""
    lines: list[str] = []
    if note := targets_note(plan):
        lines += [_paint(note, "yellow", color), ""]
    if plan.actions and not brief:
        lines.append("pixel will perform the following actions:")
        for mapping, actions in group_by_mapping(plan.actions).items():
            lines.append("")
            lines.append(_paint(f"  # {heading(desired, mapping)}", "bold", color))
            if compact:
                lines.extend(compact_lines(actions, color))
            else:
                lines.extend(action_line(action, color) for action in actions)
        lines.append("")
    if plan.findings and not brief:
        lines.append("Findings (reported, not acted on):")
        lines.extend(group_line(group) for group in group_findings(plan.findings))
        lines.append("")
    if plan.errors:
        lines.append(_paint("Errors (this plan cannot be applied):", "red", color))
        lines.extend(f"  ✗ {printable(e)}" for e in plan.errors)
        lines.append("")
    where = "not listed (-q; `pixel plan` lists them)" if brief else "above"
    lines.append(_paint(closing_line(plan, findings_where=where), "bold", color))
    return "\n".join(lines) + "\n"
