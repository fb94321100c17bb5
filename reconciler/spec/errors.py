"""Located spec errors: every problem names the file, the YAML path and the line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from reconciler.keys import printable

YamlPath = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: YamlPath) -> str:
    """`mappings[2].to`, `stores.pixel-data.bucket`, `stores["my.bucket"]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            # Keys with dots or spaces would read as nested paths if written bare.
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


def display_path(file: Path) -> str:
    """The file relative to the working directory when it lies below it, else absolute."""
    try:
        return str(file.relative_to(Path.cwd()))
    except ValueError:
        return str(file)


class SpecError(Exception):
    """One problem in the specs, at `file:line: path: message`."""

    def __init__(self, file: Path, line: int | None, path: str, message: str) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.path = path
        self.message = message

    def __str__(self) -> str:
        """One line: a file name or a quoted value with a newline or an escape in it is shown escaped."""
        where = display_path(self.file)
        if self.line is not None:
            where += f":{self.line}"
        if self.path:
            return printable(f"{where}: {self.path}: {self.message}")
        return printable(f"{where}: {self.message}")

    def __repr__(self) -> str:
        return f"SpecError({str(self)!r})"


class SpecErrors(Exception):
    """Everything wrong with a spec directory, in file then line order; nothing was loaded."""

    def __init__(self, errors: Iterable[SpecError]) -> None:
        self.errors: tuple[SpecError, ...] = tuple(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)

    @property
    def messages(self) -> list[str]:
        """One formatted line per error, as the CLI prints them."""
        return [str(error) for error in self.errors]
