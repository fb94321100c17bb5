"""Plans as text for a terminal or a log: Terraform's + ~ - with a closing summary line."""

from __future__ import annotations

from collections import defaultdict

from reconciler.model import Action, Change, Desired, Finding, Plan
from reconciler.plan.summary import summary_line
from reconciler.units import human_bytes

SYMBOL = {Change.CREATE: "+", Change.UPDATE: "~", Change.DELETE: "-", Change.READ: "~"}
COLOR = {Change.CREATE: "green", Change.UPDATE: "yellow", Change.DELETE: "red", Change.READ: "cyan"}
_ANSI = {"green": "\x1b[32m", "yellow": "\x1b[33m", "red": "\x1b[31m", "cyan": "\x1b[36m", "bold": "\x1b[1m"}
_RESET = "\x1b[0m"


def _paint(text: str, color: str, enabled: bool) -> str:
    return f"{_ANSI[color]}{text}{_RESET}" if enabled else text


def action_line(action: Action, color: bool = False) -> str:
    symbol = _paint(SYMBOL[action.change], COLOR[action.change], color)
    target = (
        f"{action.source.key} => {action.target.key}"
        if action.kind.value == "move" and action.source
        else (action.target.key)
    )
    size = f", {human_bytes(action.size)}" if action.size and action.change is not Change.DELETE else ""
    return f"  {symbol} {target}  ({action.kind.value}{size}: {action.reason})"


def _heading(desired: Desired | None, mapping: str) -> str:
    if desired is not None:
        for spec in desired.mappings:
            if spec.name == mapping:
                src = f"{spec.local_store}:{spec.local_path}"
                dst = f"{spec.s3_store}:{spec.s3_prefix}"
                arrow = {"local": "→", "s3": "←", "none": "↔"}[spec.authority.value]
                return f"  # {mapping}: {src} {arrow} {dst}"
    return f"  # {mapping}"


def finding_line(finding: Finding) -> str:
    scope = f"[{finding.mapping}] " if finding.mapping else ""
    return f"  ! {finding.kind.value}: {scope}{finding.key}: {finding.message}"


def render_text(plan: Plan, desired: Desired | None = None, *, color: bool = False) -> str:
    lines: list[str] = []
    if plan.actions:
        lines.append("pixel will perform the following actions:")
        by_mapping: dict[str, list[Action]] = defaultdict(list)
        for action in plan.actions:
            by_mapping[action.mapping].append(action)
        for mapping in sorted(by_mapping):
            lines.append("")
            lines.append(_heading(desired, mapping))
            for action in sorted(by_mapping[mapping], key=lambda a: (a.target.key, a.kind.value)):
                lines.append(action_line(action, color))
        lines.append("")
    if plan.findings:
        lines.append("Findings (reported, not acted on):")
        lines.extend(finding_line(f) for f in sorted(plan.findings, key=lambda f: (f.kind.value, f.key)))
        lines.append("")
    if plan.errors:
        lines.append(_paint("Errors (this plan cannot be applied):", "red", color))
        lines.extend(f"  ✗ {e}" for e in plan.errors)
        lines.append("")
    lines.append(_paint(summary_line(plan), "bold", color))
    return "\n".join(lines) + "\n"
