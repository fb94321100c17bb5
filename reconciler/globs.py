"""Include/exclude patterns, rclone-style.

A pattern without '/' matches the file name at any depth (`*.jsonl`); one with
'/' matches the whole relative path, where `**` spans directories and `*` stays
inside one path segment. `?` is one character, `[abc]`/`[a-z]`/`[!abc]` a class
of them, `{a,b}` either alternative (they nest). A pattern that cannot mean what
it says (an unclosed `[` or `{`, a stray `}`, an empty class) is a GlobError, which
the spec loader reports at its line: a pattern that silently matched nothing
would make a plan say "No changes".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

_SPECIAL = frozenset("*?[]{},")


class GlobError(ValueError):
    """A pattern that is not a glob; the message says what is wrong with it."""


def _class(pat: str, start: int) -> tuple[str, int]:
    """The regex of the character class opening at `start`, and the index after it."""
    end = pat.find("]", start + 1)
    if end == -1:
        raise GlobError('"[" opens a character class that is never closed')
    body = pat[start + 1 : end]
    if body in ("", "!"):
        raise GlobError("empty character class")
    # Literal in a glob's class, special (or reserved for nested sets) in a regex's.
    body = body.replace("\\", "\\\\").replace("[", "\\[")
    if body.startswith("!"):
        body = "^" + body[1:]
    try:
        re.compile(f"[{body}]")
    except re.error as exc:
        raise GlobError(f"invalid character class: {exc.msg}") from None
    return f"[{body}]", end + 1


@functools.lru_cache(maxsize=512)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The pattern as an anchored regex; raises GlobError when it is not a valid glob."""
    anchored = "/" in pattern
    pat = pattern.lstrip("/")
    out: list[str] = []
    depth = 0  # open alternations
    i = 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pat.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "[":
            regex, i = _class(pat, i)
            out.append(regex)
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "," and depth:
            out.append("|")
        elif c == "}":
            if not depth:
                raise GlobError('"}" closes an alternation that was never opened')
            depth -= 1
            out.append(")")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise GlobError('"{" opens an alternation that is never closed')
    body = "".join(out)
    return re.compile(f"^{body}$" if anchored else f"^(?:.*/)?{body}$")


def glob_problem(pattern: str) -> str | None:
    """Why `pattern` is not a valid glob, or None."""
    try:
        compile_glob(pattern)
    except GlobError as exc:
        return str(exc)
    return None


def escape(text: str) -> str:
    """`text` as a glob that matches exactly it (a name pasted into a pattern, like an actor's)."""
    return "".join(f"[{c}]" if c in _SPECIAL and c != "]" else c for c in text)


def matches(path: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """True when `path` is selected: matched by an include (or there are none) and by no exclude."""
    if include and not any(compile_glob(p).match(path) for p in include):
        return False
    return not any(compile_glob(p).match(path) for p in exclude)
