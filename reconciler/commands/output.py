"""Rendering a plan in the format a command was asked for: text, markdown or json."""

from __future__ import annotations

import sys

from reconciler.model import Desired, Plan
from reconciler.plan import serialize
from reconciler.plan.guards import GuardLimits
from reconciler.plan.render import color_wanted, render_text
from reconciler.plan.render_markdown import render_markdown

FORMATS = ("text", "markdown", "json")


def render_plan(
    plan: Plan,
    desired: Desired | None,
    output_format: str,
    *,
    compact: bool = False,
    limits: GuardLimits | None = None,
) -> str:
    """`limits`: the guard limits the plan was checked with, recorded in the JSON as in a saved plan."""
    if output_format == "json":
        return serialize.dumps(plan, limits=limits)
    if output_format == "markdown":
        return render_markdown(plan, desired)
    return render_text(plan, desired, color=color_wanted(sys.stdout.isatty()), compact=compact)
