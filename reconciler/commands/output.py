"""Rendering a plan in the format a command was asked for: text, markdown or json."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence

from reconciler import progress
from reconciler.choices import OutputFormat
from reconciler.keys import printable
from reconciler.model import Desired, Plan
from reconciler.plan.guards import GuardLimits
from reconciler.plan.render import render_text

FORMATS = ("text", "markdown", "json")


def fenced(lines: Sequence[str]) -> str:
    """A markdown code block no line can close early: the fence is longer than any backtick run in it."""
    text = "\n".join(printable(line) for line in lines)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def color_wanted(isatty: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set to anything (https://no-color.org).

    Read here, at the command's edge, so the renderer is handed a plain flag.
    """
    env = os.environ if environ is None else environ
    return isatty and "NO_COLOR" not in env


def render_plan(
    plan: Plan,
    desired: Desired | None,
    output_format: OutputFormat,
    *,
    compact: bool = False,
    limits: GuardLimits | None = None,
) -> str:
    """`limits`: the guard limits the plan was checked with, recorded in the JSON as in a saved plan."""
    if output_format == "json":
        from reconciler.plan import serialize  # here: text output, a warm no-op's, never needs it

        return serialize.dumps(plan, limits=limits)
    if output_format == "markdown":
        # Imported here: it brings `html` (its entity table), which a text or JSON plan never needs.
        from reconciler.plan.render_markdown import render_markdown

        return render_markdown(plan, desired)
    return render_text(plan, desired, color=color_wanted(sys.stdout.isatty()), compact=compact)


def render_preview(plan: Plan, desired: Desired | None, output_format: OutputFormat, *, compact: bool = False) -> str:
    """apply's plan before it runs: the whole plan, or under -q only its errors and closing line.

    `pixel plan -q` still prints the plan: there the plan is the output asked for, not a preview.
    """
    if output_format == "text" and progress.quiet():
        return render_text(plan, desired, color=color_wanted(sys.stdout.isatty()), brief=True)
    return render_plan(plan, desired, output_format, compact=compact)
