"""Include/exclude patterns, rclone-style.

A pattern without '/' matches the file name at any depth (`*.jsonl`); one with
'/' matches the whole relative path, where `**` spans directories and `*` stays
inside one path segment.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence


@functools.lru_cache(maxsize=512)
def compile_glob(pattern: str) -> re.Pattern[str]:
    anchored = "/" in pattern
    pat = pattern.lstrip("/")
    out: list[str] = []
    i = 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pat.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pat[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    body = "".join(out)
    return re.compile(f"^{body}$" if anchored else f"^(?:.*/)?{body}$")


def matches(path: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """True when `path` is selected: matched by an include (or there are none) and by no exclude."""
    if include and not any(compile_glob(p).match(path) for p in include):
        return False
    return not any(compile_glob(p).match(path) for p in exclude)
