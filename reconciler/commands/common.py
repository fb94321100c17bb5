"""What every command shares: loading specs, reporting errors, terminal colour."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from reconciler.errors import UserError
from reconciler.model import Desired, Plan
from reconciler.spec import SpecErrors, load_desired
from reconciler.workflow import Workspace, observe_and_plan, open_stores


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
        raise UserError(f"{len(exc.errors)} problem(s) in the specs in {specs}; nothing was touched") from exc


def plan_workspace(specs: Path, parallelism: int) -> tuple[Workspace, Plan]:
    desired = load(specs)
    ws = open_stores(desired, parallelism=parallelism)
    _, plan = observe_and_plan(ws)
    return ws, plan
