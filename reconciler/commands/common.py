"""What every command shares: loading specs, reporting errors, terminal colour."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from reconciler.errors import UserError
from reconciler.model import Desired, Plan
from reconciler.observe.hashcache import cache_dir
from reconciler.plan import guards
from reconciler.plan.guards import GuardLimits
from reconciler.progress import observe_progress
from reconciler.spec import SpecErrors, load_desired
from reconciler.spec.validate import SPEC_SCHEMA
from reconciler.spec.validcache import CACHE_FILE as VALID_CACHE_FILE
from reconciler.spec.validcache import ValidCache
from reconciler.workflow import Workspace, observe_and_plan, open_stores


def error(message: str) -> None:
    click.echo(f"Error: {message}", err=True)


def use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def load(specs: Path) -> Desired:
    """Load and validate the specs; every problem is printed and UserError raised."""
    try:
        valid = ValidCache(cache_dir(os.environ) / VALID_CACHE_FILE, SPEC_SCHEMA)
        return load_desired(specs, os.environ, valid)
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
) -> tuple[Workspace, Plan]:
    """Load, observe and plan; the delete guards always run (default limits unless given)."""
    desired = load(specs)
    ws = open_stores(desired, parallelism=parallelism)
    with observe_progress(output_format=output_format) as progress:
        observed, plan = observe_and_plan(ws, rehash_all=rehash_all, progress=progress)
    # ws.desired, not desired: it includes the actors discovered when the stores were opened.
    return ws, guards.check(ws.desired, observed, plan, limits or GuardLimits())
