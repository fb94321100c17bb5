"""Findings grouped per cause, the way every renderer lists and counts them.

The planner reports one finding per key (a status page needs each image), but a reviewer
needs one line per cause: twelve images one actor declares and nobody has read as one
line, and a dataset two passes both report (`[datasets]` and `[final_dataset]`) read once.

Two steps, both pure:
1. findings of one kind about one key merge, whatever pass reported them: their scopes
   and their (distinct) messages are joined;
2. findings of one kind and scope whose messages differ only by their own key merge into
   one group, the keys folded into a range where they differ by a number: `0042_{0–11}.jpg`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reconciler.model import Finding, FindingKind

# A message that does not name its key is grouped only with messages equal to it.
_HOLE = "\x00"
_NUMBER = re.compile(r"(\d+)(?!.*\d)")
# A group that cannot be written as one range lists this many keys, then says how many more.
LISTED_KEYS = 5


@dataclass(frozen=True, slots=True)
class FindingGroup:
    kind: FindingKind
    scopes: tuple[str, ...]
    keys: tuple[str, ...]
    template: str  # the message, with _HOLE where each finding named its own key

    @property
    def keys_text(self) -> str:
        return fold_keys(self.keys)

    @property
    def message(self) -> str:
        return self.template.replace(_HOLE, self.keys_text)

    @property
    def names_keys(self) -> bool:
        return _HOLE in self.template


def _ranges(numbers: Sequence[int]) -> str:
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}–{prev}")
        if n is not None:
            start = prev = n
    return ",".join(parts)


def fold_keys(keys: Sequence[str]) -> str:
    """`a_{0–11}.jpg` for keys that differ only by their last number; else the first few, then a count."""
    if len(keys) == 1:
        return keys[0]
    split: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key in keys:
        match = _NUMBER.search(key)
        if match is None:
            split.clear()
            break
        split[(key[: match.start()], key[match.end() :])].append(match.group(1))
    if len(split) == 1:
        (prefix, suffix), digits = next(iter(split.items()))
        # Zero-padded numbers are kept as they are only when all have one width; otherwise list them.
        if len({len(d) for d in digits}) == 1 or not any(d.startswith("0") and len(d) > 1 for d in digits):
            numbers = sorted({int(d) for d in digits})
            width = len(digits[0]) if digits[0].startswith("0") and len(digits[0]) > 1 else 0
            text = _ranges(numbers)
            if width:
                text = re.sub(r"\d+", lambda m: m.group(0).zfill(width), text)
            return f"{prefix}{{{text}}}{suffix}"
    shown = ", ".join(keys[:LISTED_KEYS])
    return shown if len(keys) <= LISTED_KEYS else f"{shown}, … ({len(keys) - LISTED_KEYS:,} more)"


def _natural(key: str) -> tuple[object, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key))


def group_findings(findings: Iterable[Finding]) -> list[FindingGroup]:
    """The findings per cause, sorted by kind, scope and first key."""
    per_key: dict[tuple[FindingKind, str], list[Finding]] = defaultdict(list)
    for finding in findings:
        per_key[(finding.kind, finding.key)].append(finding)
    merged: dict[tuple[FindingKind, tuple[str, ...], str], list[str]] = defaultdict(list)
    for (kind, key), same in per_key.items():
        scopes = tuple(sorted({f.mapping for f in same if f.mapping}))
        messages = list(dict.fromkeys(f.message for f in sorted(same, key=lambda f: f.mapping)))
        # A message naming its key becomes a template; a key too short to tell apart from other text is not.
        template = "; ".join(m.replace(key, _HOLE) if len(key) > 2 else m for m in messages)
        merged[(kind, scopes, template)].append(key)
    groups = [
        FindingGroup(kind, scopes, tuple(sorted(keys, key=_natural)), template)
        for (kind, scopes, template), keys in merged.items()
    ]
    return sorted(groups, key=lambda g: (g.kind.value, g.scopes, _natural(g.keys[0])))


def count_text(group: FindingGroup) -> str:
    return f" ×{len(group.keys):,}" if len(group.keys) > 1 else ""


def scope_text(group: FindingGroup) -> str:
    return f"[{', '.join(group.scopes)}] " if group.scopes else ""


def group_text(group: FindingGroup) -> str:
    """`missing ×12: [actors] actor 0042 declares 0042_{0–11}.jpg (count: 12) but …`; unescaped."""
    head = f"{group.kind.value}{count_text(group)}: {scope_text(group)}"
    if group.names_keys:
        return head + group.message
    return f"{head}{group.keys_text}: {group.message}"
