"""`pixel plan`: observe, plan and guard; print the plan, optionally save it (-out) for `pixel apply FILE`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from reconciler.commands import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, planfile
from reconciler.commands.common import plan_workspace, say
from reconciler.commands.output import render_plan
from reconciler.keys import printable
from reconciler.plan.guards import GuardLimits


def plan(
    specs: Path,
    *,
    detailed_exitcode: bool,
    parallelism: int,
    rehash_all: bool = False,
    out: Path | None = None,
    limits: GuardLimits | None = None,
    output_format: str = "text",
    compact: bool = False,
    targets: Sequence[str] = (),
    observe_mode: str = "list",
    relist: tuple[str, ...] = (),
) -> int:
    ws, result = plan_workspace(
        specs,
        parallelism,
        rehash_all=rehash_all,
        limits=limits,
        output_format=output_format,
        targets=targets,
        observe_mode=observe_mode,
        relist=relist,
    )
    click.echo(render_plan(result, ws.desired, output_format, compact=compact, limits=limits), nl=False)
    if out is not None:
        planfile.dump(result, out, limits=limits)
        how = "apply it with" if result.applyable else "it cannot be applied (errors above); review it with"
        # Only text output has room for the note on stdout: markdown and json must stay one document.
        command = f"pixel {'apply' if result.applyable else 'show'} {out}"
        say("\n" + printable(f"Saved the plan to {out}: {how} `{command}`.") + "\n", err=output_format != "text")
    if result.errors:
        return EXIT_ERROR
    if detailed_exitcode and result.has_changes:
        return EXIT_CHANGES
    return EXIT_OK
