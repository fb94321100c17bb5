"""What every command shares: loading specs, reporting errors, terminal colour."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from reconciler.errors import UserError
from reconciler.model import Desired, Plan
from reconciler.plan.guards import GuardLimits
from reconciler.progress import observe_progress
from reconciler.spec import SpecErrors, load_desired
from reconciler.workflow import Workspace, guarded_plan, open_stores


def error(message: str) -> None:
    click.echo(f"Error: {message}", err=True)


def use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def load(specs: Path) -> Desired:
    """Load and validate the specs; every problem is printed and UserError raised."""
    try:
        return load_desired(specs, os.environ)
    except SpecErrors as exc:
        for problem in exc.errors:
            click.echo(f"Error: {problem}", err=True)
        count = len(exc.errors)
        problems = f"{count} problem{'' if count == 1 else 's'}"
        raise UserError(f"{problems} in the specs in {specs}/; nothing was touched") from exc


def plan_workspace(
    specs: Path,
    parallelism: int,
    *,
    rehash_all: bool = False,
    limits: GuardLimits | None = None,
    output_format: str = "text",
    targets: Sequence[str] = (),
) -> tuple[Workspace, Plan]:
    """Load, observe and plan (only `targets`, when given); the delete guards always run (default limits if none)."""
    desired = load(specs)
    ws = open_stores(desired, parallelism=parallelism)
    with observe_progress(output_format=output_format) as progress:
        _, plan = guarded_plan(ws, limits, rehash_all=rehash_all, progress=progress, targets=targets)
    return ws, plan
