"""The `pixel` command: parse arguments, call a command function, exit with its code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler import commands
from reconciler.commands.apply import apply as apply_command
from reconciler.commands.common import error
from reconciler.commands.plan import plan as plan_command
from reconciler.commands.validate import validate as validate_command
from reconciler.errors import UserError
from reconciler.logs import configure_logging

F = TypeVar("F", bound=Callable[..., Any])


def common_options(fn: F) -> F:
    """--specs and the logging flags, accepted by every command."""
    fn = click.option(
        "--specs",
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


def run(fn: Callable[..., int], *args: Any, log_format: str, verbose: bool, quiet: bool, **kwargs: Any) -> None:
    """Configure logging, call the command, turn UserError into one message and exit 1."""
    configure_logging(log_format, verbose, quiet)
    try:
        code = fn(*args, **kwargs)
    except UserError as exc:
        error(str(exc))
        code = commands.EXIT_ERROR
    raise SystemExit(code)


parallelism_option = click.option(
    "--parallelism", default=16, show_default=True, type=click.IntRange(1, 256), help="Actions or requests at once."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pixel-reconciler", prog_name="pixel")
def main() -> None:
    """pixel: declare where training data must live; plan and apply the difference.

    Exit codes: 0 success (no changes with --detailed-exitcode), 1 error, 2 changes present
    (plan --detailed-exitcode).
    """


@main.command()
@common_options
def validate(specs: Path, **log: Any) -> None:
    """Check the specs against their schemas without touching any store."""
    run(validate_command, specs, **log)


@main.command()
@common_options
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are.")
@parallelism_option
def plan(specs: Path, detailed_exitcode: bool, parallelism: int, **log: Any) -> None:
    """Show what apply would do. Reads only."""
    run(plan_command, specs, detailed_exitcode=detailed_exitcode, parallelism=parallelism, **log)


@main.command()
@common_options
@click.option("--auto-approve", is_flag=True, help="Skip the interactive 'yes' confirmation.")
@parallelism_option
def apply(specs: Path, auto_approve: bool, parallelism: int, **log: Any) -> None:
    """Plan, confirm, then carry out the plan in dependency order."""
    run(apply_command, specs, auto_approve=auto_approve, parallelism=parallelism, **log)
