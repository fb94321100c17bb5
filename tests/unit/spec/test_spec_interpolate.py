"""${VAR} interpolation, alone: shell-like defaults, escapes, and refusals."""

from __future__ import annotations

import pytest

from reconciler.spec.interpolate import interpolate, interpolate_tree

ENV = {"HOST": "minio", "EMPTY": "", "PORT": "9000"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${HOST}", "minio"),
        ("http://${HOST}:${PORT}/x", "http://minio:9000/x"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),  # like the shell: an empty value takes the default too
        ("${EMPTY}", ""),
        ("${MISSING:-}", ""),
        ("${HOST:-fallback}", "minio"),
        ("${MISSING:-a:b/c d}", "a:b/c d"),
        ("$${HOST}", "${HOST}"),
        ("cost $5 and $HOST", "cost $5 and $HOST"),  # only ${ is special
        ("$$${HOST}", "$${HOST}"),
    ],
)
def test_interpolates(text: str, expected: str) -> None:
    assert interpolate(text, ENV) == (expected, [])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("${MISSING}", 'environment variable "MISSING" is not set (write ${MISSING:-default} to give a default)'),
        ("${1X}", 'invalid reference "${1X}" (expected ${NAME} or ${NAME:-default})'),
        ("${HOST-x}", 'invalid reference "${HOST-x}" (expected ${NAME} or ${NAME:-default})'),
        ("${}", 'invalid reference "${}" (expected ${NAME} or ${NAME:-default})'),
        ("${A:-${B}}", 'nested reference in the default of "${A:-...}" is not supported'),
        (
            "x${HOST",
            'unterminated "${" in "x${HOST" (expected ${NAME} or ${NAME:-default}; write $${ for a literal ${)',
        ),
    ],
)
def test_reports_problems(text: str, problem: str) -> None:
    assert interpolate(text, ENV)[1] == [problem]


def test_every_problem_in_one_string_is_reported() -> None:
    _, problems = interpolate("${A}/${B}", {})

    assert problems == [
        'environment variable "A" is not set (write ${A:-default} to give a default)',
        'environment variable "B" is not set (write ${B:-default} to give a default)',
    ]


def test_tree_interpolates_values_not_keys_and_reports_paths() -> None:
    seen: list[tuple[tuple[str | int, ...], str]] = []
    data = {"${HOST}": {"list": ["${HOST}", 3, True, None, "${NOPE}"]}}

    result = interpolate_tree(data, ENV, lambda path, message: seen.append((path, message)))

    assert result == {"${HOST}": {"list": ["minio", 3, True, None, ""]}}
    assert seen == [
        (("${HOST}", "list", 4), 'environment variable "NOPE" is not set (write ${NOPE:-default} to give a default)')
    ]
    assert data["${HOST}"]["list"][0] == "${HOST}"  # the parsed document is not modified
