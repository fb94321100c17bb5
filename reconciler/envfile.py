"""A dotenv file (`--env-file PATH` / PIXEL_ENV_FILE) loaded into the environment before specs are read.

The seeds keep their S3 keys in `ai/.env`; a store's `credentials_env` names the
variables. The format is the common subset: `KEY=value`, an optional `export `,
`#` comments, values in single quotes (literal) or double quotes (with \\n, \\t,
\\" and \\\\ escapes), unquoted values ending at ` #`. Variables already set in the
environment win, as with python-dotenv and docker. Messages name the file, the
line and the variable, never a value.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from pathlib import Path

from reconciler.errors import UserError

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def parse_env(text: str, *, source: str = "env file") -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(raw)
        if match is None:
            raise UserError(f"{source}:{number}: expected KEY=value (a variable name, then =)")
        name, value = match.group(1), match.group(2)
        values[name] = _value(value, source=source, number=number, name=name)
    return values


def _value(value: str, *, source: str, number: int, name: str) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = _closing(value, quote)
        if end < 0:
            raise UserError(f"{source}:{number}: the value of {name} has no closing {quote}")
        rest = value[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise UserError(f"{source}:{number}: unexpected text after the quoted value of {name}")
        inner = value[1:end]
        if quote == "'":
            return inner
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), inner)
    comment = re.search(r"\s#", value)
    return (value[: comment.start()] if comment else value).strip()


def _closing(value: str, quote: str) -> int:
    i = 1
    while i < len(value):
        if value[i] == "\\" and quote == '"':
            i += 2
            continue
        if value[i] == quote:
            return i
        i += 1
    return -1


def load_env_file(path: str | Path, env: MutableMapping[str, str] | None = None) -> list[str]:
    """Set every variable of the file that is not set yet; returns the names set (never the values)."""
    env = os.environ if env is None else env
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UserError(f"{file}: cannot read the env file: {exc.strerror or exc}") from None
    values = parse_env(text, source=str(file))
    added = [name for name in values if name not in env]
    for name in added:
        env[name] = values[name]
    return added
