"""`${VAR}` and `${VAR:-default}` in spec strings; `$${` is a literal `${`.

The defaults follow the shell (and docker compose): `:-` applies when the variable is
unset or empty. Nested references inside a default are refused rather than half-parsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from reconciler.spec.errors import YamlPath

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHAPE = "${NAME} or ${NAME:-default}"


def interpolate(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Return the interpolated text and the problems found (empty when it is well formed)."""
    if "$" not in text:
        return text, []
    out: list[str] = []
    problems: list[str] = []
    pos = 0
    while True:
        dollar = text.find("$", pos)
        if dollar < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:dollar])
        if text.startswith("$${", dollar):
            out.append("${")
            pos = dollar + 3
            continue
        if not text.startswith("${", dollar):
            out.append("$")
            pos = dollar + 1
            continue
        close = text.find("}", dollar + 2)
        if close < 0:
            problems.append(f'unterminated "${{" in {_quote(text)} (expected {_SHAPE}; write $${{ for a literal ${{)')
            out.append(text[dollar:])
            break
        body = text[dollar + 2 : close]
        name, separator, default = body.partition(":-")
        if not _NAME.fullmatch(name):
            problems.append(f'invalid reference "${{{body}}}" (expected {_SHAPE})')
        elif "${" in default:
            problems.append(f'nested reference in the default of "${{{name}:-...}}" is not supported')
        else:
            value = env.get(name)
            if separator and not value:
                out.append(default)
            elif value is None:
                problems.append(
                    f'environment variable "{name}" is not set (write ${{{name}:-default}} to give a default)'
                )
            else:
                out.append(value)
        pos = close + 1
    return "".join(out), problems


def interpolate_tree(
    data: object, env: Mapping[str, str], report: Callable[[YamlPath, str], None], path: YamlPath = ()
) -> object:
    """A copy of `data` with every string value interpolated; mapping keys are names and stay as written."""
    if isinstance(data, str):
        result, problems = interpolate(data, env)
        for problem in problems:
            report(path, problem)
        return result
    if isinstance(data, dict):
        return {key: interpolate_tree(value, env, report, (*path, key)) for key, value in data.items()}
    if isinstance(data, list):
        return [interpolate_tree(item, env, report, (*path, index)) for index, item in enumerate(data)]
    return data


def _quote(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'
