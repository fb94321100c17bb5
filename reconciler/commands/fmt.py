"""`pixel fmt [--check] [FILE...]`: rewrite spec files in one canonical YAML layout, comments kept.

The layout: mappings indented by 2, sequence items by 2 under their key (`  - name: raw`), a flow collection
(`{at: ..., protect: true}`, `[a, b]`) on one line, no trailing whitespace, LF line ends, one final newline,
no byte-order mark. Comments, blank lines, key order, quoting and anchors stay as written. Formatting is a
round trip through ruamel.yaml, whose loader keeps comments and styles attached to the nodes they belong to.

A file is only ever rewritten with text that pixel's own spec parser reads as the same data and that holds every
comment of the original: the result is parsed again and compared, comments counted on both sides. Where the
round trip fails that, only the lines are tidied; a file that is not YAML pixel can read is refused and left as
it is (fix what `pixel validate` says first). Files are replaced
temp-then-rename, keeping their permissions. `--check` writes nothing, lists the files that would change and
exits 1 when there is one, for CI.
"""

from __future__ import annotations

import bisect
import io
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import click

from reconciler.commands import EXIT_ERROR, EXIT_OK
from reconciler.commands.common import error
from reconciler.errors import UserError
from reconciler.spec.errors import display_path
from reconciler.spec.loader import MAX_SPEC_BYTES, SPEC_SUFFIXES
from reconciler.spec.yamlnodes import YamlSyntaxError, parse_yaml

# Wide enough that ruamel never folds a line: a folded flow collection would leave a trailing space behind.
_NO_WRAP = 1 << 20
# Zero-width after the `#`: a `#` inside a quoted scalar must not swallow a real comment later on its line.
_COMMENT = re.compile(r"(?:^|(?<=[ \t]))#(?=([^\r\n]*))", re.MULTILINE)


class FormatRefused(Exception):
    """The file cannot be formatted without risk to its meaning; it is left untouched."""


def _parsed(text: str, what: str) -> object:
    try:
        return parse_yaml(text).data
    except YamlSyntaxError as exc:
        line = f" line {exc.line}:" if exc.line else ""
        raise FormatRefused(f"{what} is not YAML pixel can read:{line} {exc.message}") from None


def _round_trip(text: str) -> str:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = _NO_WRAP
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        raise FormatRefused(f"the formatter cannot read it: {str(exc).splitlines()[0]}") from None
    if data is None:
        # Empty, or comments only: nothing for the emitter to hang the comments on; only the lines are tidied.
        return text
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _tidy(text: str) -> str:
    """Trailing whitespace and blank lines at the end dropped, and each comment on a line of its own indented like
    the line it stands above (ruamel keeps a comment's column as written)."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    indent = 0
    for index in range(len(lines) - 1, -1, -1):
        stripped = lines[index].lstrip()
        if stripped.startswith("#"):
            lines[index] = " " * indent + stripped
        elif stripped:
            indent = len(lines[index]) - len(stripped)
    return "\n".join(lines) + "\n" if lines else ""


def comments(text: str) -> Counter[str]:
    """The text of every non-empty comment: a `#` at a line's start or after a blank that no scalar holds."""
    import yaml

    starts: list[int] = []
    ends: list[int] = []
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, yaml.ScalarToken):
            starts.append(token.start_mark.index)
            ends.append(token.end_mark.index)
    found: Counter[str] = Counter()
    line_end = -1  # a `#` inside a comment found on this line is part of that comment
    for match in _COMMENT.finditer(text):
        at = match.start()
        # Scalar tokens come in text order and do not overlap: the last one starting before `#` is the only one
        # that can hold it.
        index = bisect.bisect_right(starts, at) - 1
        if at < line_end or (index >= 0 and at < ends[index]):
            continue
        body = match.group(1)
        line_end = at + 1 + len(body)
        if body.strip():
            found[body.strip()] += 1
    return found


def _keeps(candidate: str, data: object, said: Counter[str]) -> bool:
    """Whether `candidate` reads as `data` and still holds every comment of the original."""
    try:
        return _parsed(candidate, "the formatted text") == data and not said - comments(candidate)
    except FormatRefused:
        return False


def format_text(text: str) -> str:
    """The canonical form of one spec file's text; FormatRefused when it cannot be had with the same meaning.

    The round trip is given the text with its lines tidied first (ruamel misreads a key followed by trailing
    blanks and a sequence at the key's own indentation). Its result must read as the same data and keep every
    comment; where the library would drop one (it loses a comment line between flow items in some layouts),
    the file gets only the tidied lines: still the same data and comments, and the same answer next time.
    """
    text = text.removeprefix("\ufeff")
    data = _parsed(text, "the file")
    said = comments(text)
    tidied = _tidy(text)
    # Trailing spaces are only dropped where that keeps the data (a block scalar may end a line in blanks).
    start = tidied if _keeps(tidied, data, said) else text
    formatted = _round_trip(start)
    for candidate in (_tidy(formatted), formatted, start):
        if _keeps(candidate, data, said):
            return candidate
    raise FormatRefused("formatting would change what it says; it is left as it is, format it by hand")


def _spec_files(specs: Path, files: tuple[Path, ...]) -> Iterator[Path]:
    if files:
        for file in files:
            if file.suffix.lower() not in SPEC_SUFFIXES:
                raise UserError(f"{display_path(Path(os.path.abspath(file)))}: not a spec file (*.yaml, *.yml)")
            yield file
        return
    if not specs.is_dir():
        raise UserError(f"spec directory {os.path.abspath(specs)} does not exist (--specs DIR)")
    # The files the loader reads: the same suffixes, dotfiles skipped.
    for entry in sorted(specs.iterdir()):
        if entry.suffix.lower() in SPEC_SUFFIXES and not entry.name.startswith(".") and entry.is_file():
            yield entry


def _read(file: Path) -> str:
    try:
        if file.stat().st_size > MAX_SPEC_BYTES:
            raise FormatRefused(f"larger than the limit on a spec file ({MAX_SPEC_BYTES:,} bytes)")
        return file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatRefused(f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise FormatRefused(f"cannot read: {exc.strerror or exc}") from None


def _replace(file: Path, text: str) -> None:
    """Temp file in the same directory (a dotfile: the loader never reads it), fsync, rename over the file."""
    mode = file.stat().st_mode & 0o7777
    fd, temp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".pixel-fmt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, file)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def fmt(specs: Path, files: tuple[Path, ...] = (), *, check: bool = False) -> int:
    changed: list[Path] = []
    refused = 0
    for file in _spec_files(specs, files):
        shown = display_path(Path(os.path.abspath(file)))
        try:
            text = _read(file)
            formatted = format_text(text)
        except FormatRefused as exc:
            error(f"{shown}: {exc}")
            refused += 1
            continue
        if formatted == text:
            continue
        changed.append(file)
        if not check:
            try:
                _replace(file, formatted)
            except OSError as exc:
                error(f"{shown}: cannot write: {exc.strerror or exc}")
                refused += 1
                continue
        click.echo(shown)
    if refused:
        return EXIT_ERROR
    if check and changed:
        error(f"{len(changed)} spec file(s) not formatted; run `pixel fmt` to rewrite them")
        return EXIT_ERROR
    return EXIT_OK
