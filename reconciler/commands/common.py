"""What every command shares: loading specs, reporting errors, terminal colour."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from reconciler.errors import UserError
from reconciler.model import Desired, Plan
from reconciler.plan import guards
from reconciler.plan.guards import GuardLimits
from reconciler.progress import observe_progress
from reconciler.spec import SpecErrors, load_desired
from reconciler.workflow import Workspace, from_inventory, observe_and_plan, open_stores


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


def observe_through(ws: Workspace, observe_mode: str, relist: tuple[str, ...]) -> None:
    """`--observe inventory`: the S3 side from S3 Inventory reports; `--relist-prefix` only makes sense with it."""
    if observe_mode == "inventory":
        from_inventory(ws, relist)
    elif relist:
        raise UserError("--relist-prefix lists prefixes live instead of from the inventory: use --observe inventory")


def plan_workspace(
    specs: Path,
    parallelism: int,
    *,
    rehash_all: bool = False,
    limits: GuardLimits | None = None,
    output_format: str = "text",
    observe_mode: str = "list",
    relist: tuple[str, ...] = (),
) -> tuple[Workspace, Plan]:
    """Load, observe and plan; the delete guards always run (default limits unless given)."""
    desired = load(specs)
    ws = open_stores(desired, parallelism=parallelism)
    observe_through(ws, observe_mode, relist)
    with observe_progress(output_format=output_format) as progress:
        observed, plan = observe_and_plan(ws, rehash_all=rehash_all, progress=progress)
    # ws.desired, not desired: it includes the actors discovered when the stores were opened.
    return ws, guards.check(ws.desired, observed, plan, limits or GuardLimits())
