"""A plan as one GitHub pull-request comment.

Layout: a title with the result, a red banner when anything would be deleted, a
summary table per category (objects and bytes), one `<details>` block per
mapping or tier with the actions as a `diff` block (GitHub colours + and -),
findings in their own section, errors last. GitHub refuses comments over 65,536
characters, so the whole comment is kept under MAX_CHARS however big the plan:
each section gets a share of the room and says how many lines it left out.
Only the lines that fit are ever formatted, which keeps 200,000 actions well
under two seconds.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Callable, Sequence

from reconciler.keys import printable
from reconciler.model import Action, Change, Desired, Finding, FindingKind, ObjectRef, Plan
from reconciler.plan.render import SYMBOL, group_by_mapping, heading, target_text, targets_note
from reconciler.plan.summary import Tally, closing_line, summary_line, tally
from reconciler.units import human_bytes

MAX_CHARS = 65_000
# Kept free for the closing notes, so the fixed parts never push the comment over MAX_CHARS.
_TAIL_RESERVE = 1_000

# Summary table rows: (label, categories from summary.tally that it adds up).
TABLE_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("upload", ("upload",)),
    ("download", ("download",)),
    ("update", ("update",)),
    ("move", ("move",)),
    ("copy", ("copy",)),
    ("delete", ("delete",)),
    ("rehash", ("rehash",)),
    ("release local", ("release-local",)),
    ("manifests", ("write-manifest",)),
)
# Rows shown even at zero, so a reviewer always sees the three that matter most.
_ALWAYS = frozenset({"upload", "update", "delete"})


def _code(text: str) -> str:
    """Inline code that survives backticks in a key."""
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}"


def _clip(text: str, limit: int = 2_000) -> str:
    """One message never takes the whole comment: an error is readable in its first 2,000 characters."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit:,} more characters)"


def _diff_line(action: Action) -> str:
    size = f", {human_bytes(action.size)}" if action.size and action.change is not Change.DELETE else ""
    symbol = "!" if action.change is Change.READ else SYMBOL[action.change]
    # A diff block ends at a line of backticks: a key cannot start one, but keep it impossible anyway.
    text = f"{symbol} {target_text(action)}  ({action.kind.value}{size}: {printable(action.reason)})"
    return text.replace("```", "'''")


def _deleted(plan: Plan) -> tuple[int, int, list[ObjectRef]]:
    """Deletes and moves (whose source goes): count, bytes, and the first few objects for the banner."""
    count = size = 0
    sample: list[ObjectRef] = []
    for action in plan.actions:
        if action.change is Change.DELETE:
            count += 1
            size += action.size
            if len(sample) < 3:
                sample.append(action.target)
    return count, size, sample


def _title(plan: Plan) -> str:
    if plan.errors:
        return f"### ❌ pixel plan: cannot be applied ({len(plan.errors)} error(s))"
    if not plan.has_changes and plan.findings:
        return f"### pixel plan: no changes to apply, {len(plan.findings):,} finding(s)"
    if not plan.has_changes:
        return "### ✅ pixel plan: no changes"
    return f"### pixel plan: {summary_line(plan).removeprefix('Plan: ').rstrip('.')}"


def _table(counts: dict[str, Tally]) -> list[str]:
    lines = ["| action | objects | bytes |", "|---|---:|---:|"]
    for label, categories in TABLE_ROWS:
        n = sum(counts[c].count for c in categories if c in counts)
        b = sum(counts[c].bytes for c in categories if c in counts)
        if n or label in _ALWAYS:
            lines.append(f"| {label} | {n:,} | {human_bytes(b) if n else '—'} |")
    return lines


class _Budget:
    """Characters left for the comment; sections take a share and report what they left out."""

    def __init__(self, total: int) -> None:
        self.left = total

    def take(self, text: str) -> None:
        self.left -= len(text) + 1


def _budgeted_lines(count: int, render: Callable[[int], str], room: int) -> tuple[list[str], int]:
    """Render items 0..count-1 while they fit in `room` characters; return the lines and how many were left out."""
    lines: list[str] = []
    used = 0
    for i in range(count):
        line = render(i)
        if used + len(line) + 1 > room:
            return lines, count - i
        lines.append(line)
        used += len(line) + 1
    return lines, 0


def _mapping_block(name: str, actions: Sequence[Action], desired: Desired | None, room: int) -> tuple[list[str], int]:
    per_kind: dict[str, int] = defaultdict(int)
    for action in actions:
        per_kind[action.kind.value] += 1
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(per_kind.items()))
    deletes = sum(1 for a in actions if a.change is Change.DELETE)
    mark = " ⚠️" if deletes else ""
    head = [
        f"<details{' open' if deletes else ''}><summary><b>{html.escape(heading(desired, name))}</b>"
        f" — {len(actions):,} action(s): {html.escape(kinds)}{mark}</summary>",
        "",
        "```diff",
    ]
    # What the head and the closing note take comes out of this mapping's room first.
    fixed = sum(len(line) + 1 for line in head) + 300 + len(name)
    shown, left_out = _budgeted_lines(len(actions), lambda i: _diff_line(actions[i]), max(0, room - fixed))
    tail = ["```"]
    if left_out:
        tail.append(
            f"_… and {left_out:,} more action(s) in {html.escape(printable(name))} not shown;"
            " run `pixel show PLANFILE` for all of them._"
        )
    return [*head, *shown, *tail, "", "</details>", ""], left_out


def _finding_line(finding: Finding) -> str:
    scope = printable(f"[{finding.mapping}] ") if finding.mapping else ""
    key, message = printable(finding.key), printable(finding.message)
    return f"- **{finding.kind.value}** {html.escape(scope)}{_code(key)}: {html.escape(message)}"


def render_markdown(plan: Plan, desired: Desired | None = None, *, max_chars: int = MAX_CHARS) -> str:
    """The PR comment; always shorter than `max_chars` (a section that does not fit says what it left out)."""
    budget = _Budget(max_chars - _TAIL_RESERVE)
    out: list[str] = []

    def add(*lines: str) -> None:
        for line in lines:
            out.append(line)
            budget.take(line)

    add(_title(plan), "")
    if note := targets_note(plan):
        add(f"> [!WARNING]\n> {note}", "")
    deleted, deleted_bytes, sample = _deleted(plan)
    if deleted:
        examples = ", ".join(_code(printable(str(ref))) for ref in sample) + (", …" if deleted > len(sample) else "")
        add(
            "> [!CAUTION]",
            f"> **This plan deletes {deleted:,} object(s) ({human_bytes(deleted_bytes)}).** {examples}",
            "",
        )
    if plan.errors:
        add("> [!WARNING]", "> **Errors: this plan cannot be applied.**", ">")
        shown, left_out = _budgeted_lines(
            len(plan.errors), lambda i: f"> - {html.escape(_clip(printable(plan.errors[i])))}", budget.left // 4
        )
        add(*shown)
        if left_out:
            add(f"> - _… and {left_out:,} more error(s)_")
        add("")
    if plan.has_changes:
        add(*_table(tally(plan)), "")
    add(f"**{closing_line(plan, findings_where='below')}**", "")

    left_out_total = 0
    groups = group_by_mapping(plan.actions)
    # Findings get at most a quarter of what is left; the actions share the rest evenly, and a
    # mapping that needs less than its share hands the remainder on to the next.
    findings_room = budget.left // 4 if plan.findings else 0
    if groups:
        add("#### Actions", "")
        remaining = budget.left - findings_room
        for index, (name, actions) in enumerate(groups.items()):
            share = remaining // (len(groups) - index)
            block, left_out = _mapping_block(name, actions, desired, share)
            left_out_total += left_out
            add(*block)
            remaining = budget.left - findings_room

    if plan.findings:
        findings = sorted(plan.findings, key=lambda f: (f.kind.value, f.mapping, f.key))
        per_kind: dict[FindingKind, int] = defaultdict(int)
        for finding in findings:
            per_kind[finding.kind] += 1
        counts = ", ".join(f"{n:,} {kind.value}" for kind, n in sorted(per_kind.items()))
        add("#### Findings (reported, not acted on)", "", f"{counts}.", "")
        shown, left_out = _budgeted_lines(len(findings), lambda i: _finding_line(findings[i]), budget.left)
        add(*shown)
        if left_out:
            left_out_total += left_out
            add(f"- _… and {left_out:,} more finding(s) not shown_")
        add("")

    if left_out_total:
        add(
            f"<sub>{left_out_total:,} line(s) were left out to keep this comment under {max_chars:,} characters;"
            " the plan file holds everything.</sub>"
        )
    text = "\n".join(out).rstrip("\n") + "\n"
    if len(text) >= max_chars:
        # Only pathological input gets here (a single line longer than the room, e.g. a huge error
        # message): a hard cut still keeps the comment postable. Close any open code block.
        note = "\n```\n\n_… truncated to stay under the comment size limit._\n"
        text = text[: max_chars - len(note) - 1] + note
    return text

