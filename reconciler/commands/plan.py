from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.commands.common import plan_workspace, use_color
from reconciler.plan.render import render_text


def plan(specs: Path, *, detailed_exitcode: bool, parallelism: int) -> int:
    ws, result = plan_workspace(specs, parallelism)
    click.echo(render_text(result, ws.desired, color=use_color()), nl=False)
    if result.errors:
        return EXIT_ERROR
    if detailed_exitcode and result.has_changes:
        return EXIT_CHANGES
    return EXIT_OK
