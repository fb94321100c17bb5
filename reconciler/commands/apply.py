from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.apply import ActionRunner, execute
from reconciler.apply.report import LogReporter, render_apply_summary
from reconciler.commands import EXIT_ERROR, EXIT_OK
from reconciler.commands.common import error, plan_workspace, use_color
from reconciler.plan.graph import build_graph
from reconciler.plan.render import render_text


def confirmed(auto_approve: bool) -> bool:
    if auto_approve:
        return True
    if not sys.stdin.isatty():
        error("no terminal to confirm on: re-run with --auto-approve to apply without a prompt")
        return False
    click.echo("Do you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n")
    answer = click.prompt("  Enter a value", default="", show_default=False)
    if answer.strip() != "yes":
        click.echo("\nApply cancelled.")
        return False
    return True


def apply(specs: Path, *, auto_approve: bool, parallelism: int) -> int:
    ws, plan = plan_workspace(specs, parallelism)
    click.echo(render_text(plan, ws.desired, color=use_color()), nl=False)
    if plan.errors:
        return EXIT_ERROR
    if not plan.has_changes:
        return EXIT_OK
    if not confirmed(auto_approve):
        return EXIT_ERROR
    runner = ActionRunner(ws.stores)
    result = execute(build_graph(plan), runner, parallelism=parallelism, reporter=LogReporter())
    click.echo(render_apply_summary(result, runner), nl=False)
    return EXIT_OK if result.ok else EXIT_ERROR
