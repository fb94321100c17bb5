"""`pixel show FILE`: render a saved plan without touching any store."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_OK, planfile
from reconciler.commands.output import render_plan
from reconciler.keys import printable


def show(plan_file: Path, *, output_format: OutputFormat = OutputFormat.TEXT, compact: bool = False) -> int:
    saved = planfile.load_saved(plan_file)
    plan = saved.plan
    if output_format != "text":
        click.echo(render_plan(plan, None, output_format, limits=saved.limits), nl=False)
        return EXIT_OK
    applyable = "yes" if plan.applyable else "no (it was saved with errors)"
    digest = f"spec digest {plan.spec_digest[:12]}…"
    click.echo(f"Saved plan {printable(str(plan_file))} ({digest}, applyable: {applyable})")
    click.echo(f"Targets: {', '.join(plan.targets) if plan.targets else 'none (all of the specs)'}\n")
    click.echo(render_plan(plan, None, OutputFormat.TEXT, compact=compact), nl=False)
    return EXIT_OK
