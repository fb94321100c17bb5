"""A plan as one GitHub pull-request comment.

Layout: a title with the result, a red banner when anything would be deleted, a
summary table per category (objects and bytes, the summary line's categories),
the deletes (never folded), then one `<details>` block per mapping or tier with
the other actions as a `diff` block (GitHub colours + and -; folded when longer
than FOLD_LINES), and the findings per cause, folded the same way. GitHub refuses comments over 65,536
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
from reconciler.model import Action, ActionKind, Change, Desired, FindingKind, ObjectRef, Plan
from reconciler.plan.render import group_by_mapping, heading, target_text, targets_note
from reconciler.plan.render import symbol as plain_symbol
from reconciler.plan.render_findings import FindingGroup, count_text, group_findings, scope_text
from reconciler.plan.summary import ORDER, Tally, category, closing_line, summary_line, tally
from reconciler.plan.summary import shown as shown_categories
from reconciler.units import human_bytes

MAX_CHARS = 65_000
# Kept free for the closing notes, so the fixed parts never push the comment over MAX_CHARS.
_TAIL_RESERVE = 1_000

# A block of at most this many lines is shown open; a longer one is folded (deletes are never folded).
FOLD_LINES = 20

def _code(text: str) -> str:
    """Inline code that survives backticks in a key."""
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}"


def _clip(text: str, limit: int = 2_000) -> str:
    """One message never takes the whole comment: an error is readable in its first 2,000 characters."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit:,} more characters)"


def _diff_line(action: Action) -> str:
    size = f", {human_bytes(action.size)}" if action.size and action.change is not Change.DELETE else ""
    symbol = "!" if action.change is Change.READ else plain_symbol(action)
    # A diff block ends at a line of backticks: a key cannot start one, but keep it impossible anyway.
    text = f"{symbol} {target_text(action)}  ({action.kind.value}{size}: {printable(action.reason)})"
    return text.replace("```", "'''")


def _deleted(plan: Plan) -> tuple[int, int, list[ObjectRef]]:
    """Deletes and moves (whose source goes): count, bytes, and the first few objects for the banner.

    Not the releases: a local copy goes only once its exact bytes are confirmed in S3, so nothing is lost; they
    get a line of their own (`_released`) and are still listed with the deletes below."""
    count = size = 0
    sample: list[ObjectRef] = []
    for action in plan.actions:
        if action.change is Change.DELETE and action.kind is not ActionKind.RELEASE_LOCAL:
            count += 1
            size += action.size
            if len(sample) < 3:
                sample.append(action.target)
    return count, size, sample


def _released(plan: Plan) -> tuple[int, int]:
    releases = [a for a in plan.actions if a.kind is ActionKind.RELEASE_LOCAL]
    return len(releases), sum(a.size for a in releases)


def _title(plan: Plan) -> str:
    if plan.errors:
        return f"### ❌ pixel plan: cannot be applied ({len(plan.errors):,} error(s))"
    if not plan.has_changes and plan.findings:
        return f"### pixel plan: no changes to apply, {len(group_findings(plan.findings)):,} finding(s)"
    if not plan.has_changes:
        return "### ✅ pixel plan: no changes"
    return f"### pixel plan: {summary_line(plan).removeprefix('Plan: ').rstrip('.')}"


def _table(counts: dict[str, Tally]) -> list[str]:
    """One row per category the summary line lists, with the same names, so the two always agree."""
    lines = ["| action | objects | bytes |", "|---|---:|---:|"]
    for name in shown_categories(counts):
        n, b = counts[name].count, counts[name].bytes
        lines.append(f"| {name} | {n:,} | {human_bytes(b) if n else '—'} |")
    return lines


def _kinds(actions: Sequence[Action]) -> str:
    """Per-category counts in the summary's order and words: a block's `1 update` is the table's `update`."""
    per: dict[str, int] = defaultdict(int)
    for action in actions:
        per[category(action)] += 1
    rank = {name: i for i, name in enumerate(ORDER)}
    return ", ".join(f"{per[name]:,} {name}" for name in sorted(per, key=lambda n: (rank.get(n, len(rank)), n)))


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


def _diff_block(
    head: list[str], name: str, actions: Sequence[Action], room: int, end: Sequence[str]
) -> tuple[list[str], int]:
    """`head`, the actions as a diff block while they fit in `room`, a note of what did not, then `end`."""
    head = [*head, "```diff"]
    # What the head and the closing note take comes out of this block's room first.
    fixed = sum(len(line) + 1 for line in head) + 300 + len(name)
    shown, left_out = _budgeted_lines(len(actions), lambda i: _diff_line(actions[i]), max(0, room - fixed))
    tail = ["```"]
    if left_out:
        tail.append(
            f"_… and {left_out:,} more action(s) in {html.escape(printable(name))} not shown;"
            " run `pixel show PLANFILE` for all of them._"
        )
    return [*head, *shown, *tail, "", *end], left_out


def _deletes_block(name: str, actions: Sequence[Action], desired: Desired | None, room: int) -> tuple[list[str], int]:
    title = f"**{html.escape(heading(desired, name))}** — {len(actions):,} action(s): {html.escape(_kinds(actions))}"
    head = [title, ""]
    return _diff_block(head, name, actions, room, [])


def _mapping_block(name: str, actions: Sequence[Action], desired: Desired | None, room: int) -> tuple[list[str], int]:
    summary = (
        f"<details{' open' if len(actions) <= FOLD_LINES else ''}><summary><b>{html.escape(heading(desired, name))}</b>"
        f" — {len(actions):,} action(s): {html.escape(_kinds(actions))}</summary>"
    )
    return _diff_block([summary, ""], name, actions, room, ["</details>", ""])


def _finding_line(group: FindingGroup) -> str:
    head = f"- **{group.kind.value}{count_text(group)}** {html.escape(printable(scope_text(group)))}"
    if group.names_keys:
        return head + html.escape(printable(group.message))
    return f"{head}{_code(printable(group.keys_text))}: {html.escape(printable(group.message))}"


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
    released, released_bytes = _released(plan)
    if released:
        add(
            "> [!NOTE]",
            f"> Releases {released:,} local cop{'y' if released == 1 else 'ies'} ({human_bytes(released_bytes)}) "
            "once S3 is confirmed to hold the same bytes; nothing is deleted from S3 by them.",
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
    deletes = group_by_mapping(a for a in plan.actions if a.change is Change.DELETE)
    others = group_by_mapping(a for a in plan.actions if a.change is not Change.DELETE)
    findings = group_findings(plan.findings)
    # Deletes come first, never folded, and may take half of the room: they are what a reviewer must see.
    # Findings get at most a quarter of what is left; the other actions share the rest evenly, and a
    # block that needs less than its share hands the remainder on to the next.
    if deletes:
        add("#### Deletes", "")
        room = budget.left // 2
        for index, (name, actions) in enumerate(deletes.items()):
            block, left_out = _deletes_block(name, actions, desired, room // (len(deletes) - index))
            left_out_total += left_out
            room -= sum(len(line) + 1 for line in block)
            add(*block)
    findings_room = budget.left // 4 if findings else 0
    if others:
        add("#### Actions" if not deletes else "#### Other actions", "")
        remaining = budget.left - findings_room
        for index, (name, actions) in enumerate(others.items()):
            share = remaining // (len(others) - index)
            block, left_out = _mapping_block(name, actions, desired, share)
            left_out_total += left_out
            add(*block)
            remaining = budget.left - findings_room

    if findings:
        per_kind: dict[FindingKind, int] = defaultdict(int)
        for group in findings:
            per_kind[group.kind] += 1
        counts = ", ".join(f"{n:,} {kind.value}" for kind, n in sorted(per_kind.items()))
        add("#### Findings (reported, not acted on)", "")
        add(f"<details{' open' if len(findings) <= FOLD_LINES else ''}><summary>{counts}</summary>", "")
        shown_lines, left_out = _budgeted_lines(len(findings), lambda i: _finding_line(findings[i]), budget.left)
        add(*shown_lines)
        if left_out:
            left_out_total += left_out
            add(f"- _… and {left_out:,} more finding(s) not shown_")
        add("", "</details>", "")

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

