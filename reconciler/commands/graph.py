"""`pixel graph [PLANFILE]`: the action DAG as dot or Mermaid, from a saved plan or a fresh one."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_OK, planfile
from reconciler.commands.common import load, plan_workspace
from reconciler.plan.render_graph import render_graph


def graph(
    specs: Path, plan_file: Path | None, *, output_format: OutputFormat = OutputFormat.DOT, parallelism: int = 16
) -> int:
    if plan_file is not None:
        plan = planfile.load(plan_file)
        # The specs only name the clusters (tiers); a saved plan renders without them. No store is opened.
        tiers = load(specs).tiers if specs.is_dir() else ()
    else:
        # The graph is the document on stdout: no progress bar may interleave with it.
        ws, plan = plan_workspace(specs, parallelism, output_format=OutputFormat.JSON)
        tiers = ws.desired.tiers
    click.echo(render_graph(plan, output_format, tiers), nl=False)
    return EXIT_OK
