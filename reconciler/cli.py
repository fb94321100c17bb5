"""The `pixel` command: parse, call, render, exit code. No logic lives here."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.apply import ActionRunner, ApplyResult, execute
from reconciler.apply.report import LogReporter, render_apply_summary
from reconciler.errors import UserError
from reconciler.logs import configure_logging
from reconciler.plan.graph import build_graph
from reconciler.plan.render import render_text
from reconciler.spec import SpecErrors, load_desired
from reconciler.workflow import Workspace, observe_and_plan, open_stores

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def common_options(fn: F) -> F:
    fn = click.option(
        "--specs",
        "specs",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("specs"),
        show_default=True,
        help="Directory of YAML spec files.",
    )(fn)
    fn = click.option(
        "--log-format",
        type=click.Choice(["console", "json"]),
        default="console",
        show_default=True,
        help="Log lines on stderr: human console output or JSON lines.",
    )(fn)
    fn = click.option("-v", "--verbose", is_flag=True, help="Debug logging.")(fn)
    fn = click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")(fn)
    return fn


def _use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _load(specs: Path) -> Any:
    try:
        return load_desired(specs, os.environ)
    except SpecErrors as exc:
        for error in exc.errors:
            click.echo(f"Error: {error}", err=True)
        raise SystemExit(EXIT_ERROR) from exc


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(EXIT_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pixel-reconciler", prog_name="pixel")
def main() -> None:
    """pixel: declare where training data must live; plan and apply the difference."""


@main.command()
@common_options
def validate(specs: Path, log_format: str, verbose: bool, quiet: bool) -> None:
    """Check the specs against their schemas without touching any store."""
    configure_logging(log_format, verbose, quiet)
    desired = _load(specs)
    click.echo(
        f"Specs in {specs} are valid: {len(desired.stores)} store(s), {len(desired.mappings)} mapping(s)."
    )


def _plan_workspace(specs: Path, parallelism: int) -> tuple[Workspace, Any]:
    desired = _load(specs)
    try:
        ws = open_stores(desired, parallelism=parallelism)
        _, plan = observe_and_plan(ws)
    except UserError as exc:
        _fail(str(exc))
    return ws, plan


@main.command("plan")
@common_options
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are.")
@click.option("--parallelism", default=16, show_default=True, type=click.IntRange(1, 256))
def plan_cmd(
    specs: Path, log_format: str, verbose: bool, quiet: bool, detailed_exitcode: bool, parallelism: int
) -> None:
    """Show what apply would do."""
    configure_logging(log_format, verbose, quiet)
    ws, plan = _plan_workspace(specs, parallelism)
    click.echo(render_text(plan, ws.desired, color=_use_color()), nl=False)
    if plan.errors:
        raise SystemExit(EXIT_ERROR)
    if detailed_exitcode and plan.has_changes:
        raise SystemExit(EXIT_CHANGES)


def _confirm(auto_approve: bool) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        _fail("no terminal to confirm on: re-run with --auto-approve to apply without a prompt")
    click.echo("Do you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n")
    answer = click.prompt("  Enter a value", default="", show_default=False)
    if answer.strip() != "yes":
        click.echo("\nApply cancelled.")
        raise SystemExit(EXIT_ERROR)


@main.command()
@common_options
@click.option("--auto-approve", is_flag=True, help="Skip the interactive 'yes' confirmation.")
@click.option(
    "--parallelism", default=16, show_default=True, type=click.IntRange(1, 256), help="Actions run at once."
)
def apply(
    specs: Path, log_format: str, verbose: bool, quiet: bool, auto_approve: bool, parallelism: int
) -> None:
    """Plan, confirm, then carry out the plan in dependency order."""
    configure_logging(log_format, verbose, quiet)
    ws, plan = _plan_workspace(specs, parallelism)
    click.echo(render_text(plan, ws.desired, color=_use_color()), nl=False)
    if plan.errors:
        raise SystemExit(EXIT_ERROR)
    if not plan.has_changes:
        return
    _confirm(auto_approve)
    runner = ActionRunner(ws.stores)
    result: ApplyResult = execute(build_graph(plan), runner, parallelism=parallelism, reporter=LogReporter())
    click.echo(render_apply_summary(result, runner), nl=False)
    if not result.ok:
        raise SystemExit(EXIT_ERROR)
