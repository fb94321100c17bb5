"""What a key or relative path may look like, and how one is shown to a person.

Keys come from other people's buckets and file names from other people's disks: they can hold
newlines, terminal escapes and bidi overrides. Everything that shows a key, a path or a message
built from them to a person (plan text and markdown, show, explain, status, apply reports,
console logs, error messages) passes it through `printable`; JSON output is already exact.
"""

from __future__ import annotations

# Shown as an escape instead of acting on the terminal or the page: C0 controls and DEL, C1 controls
# (a terminal may read U+009B as an escape sequence), the Unicode line and paragraph separators, and the
# bidi embeddings, overrides and isolates that reorder what is displayed (U+202A-U+202E, U+2066-U+2069).
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPED = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_TABLE = {
    code: _NAMED.get(chr(code)) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in _ESCAPED
}


def printable(text: str) -> str:
    """`text` on one line with every control and bidi character written as a visible escape (\\n, \\x1b, \\u202e).

    Idempotent (a backslash is left as it is), so a message escaped once may pass through again.
    """
    return text.translate(_TABLE)


def dot_segment(path: str) -> str | None:
    """The "." or ".." segment in a '/'-separated key, if any: a server or a file system may resolve it away."""
    segments = path.split("/")
    for dots in ("..", "."):
        if dots in segments:
            return dots
    return None


def segment_problem(path: str) -> str | None:
    """Why `path` cannot be a key or relative path in a spec, or None. A trailing "/" is allowed."""
    if path.startswith("/"):
        return 'must not start with "/"'
    if dots := dot_segment(path):
        return f'must not contain "{dots}" segments'
    if "" in path.split("/")[:-1]:
        return 'must not contain empty segments ("//")'
    return None
