"""`pixel plan`: observe, plan and guard; print the plan, optionally save it (-out) for `pixel apply FILE`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from reconciler.choices import ObserveMode, OutputFormat, Scale
from reconciler.commands.common import note_saved, plan_exit, plan_workspace
from reconciler.commands.output import fenced, render_plan
from reconciler.errors import UserError
from reconciler.plan.guards import GuardLimits
from reconciler.spec import SpecErrors


def failure_markdown(exc: UserError) -> str:
    """The PR comment when no plan could be made: what stopped it, with every spec problem."""
    cause = exc.__cause__
    if isinstance(cause, SpecErrors):
        title = "### pixel plan: the specs are invalid"
        lines = [*(str(problem) for problem in cause.errors), str(exc)]
    else:
        title = "### pixel plan: failed"
        lines = str(exc).split("\n")
    return f"{title}\n\nNo plan was made and nothing was touched. Fix this, then push again:\n\n{fenced(lines)}\n"


def plan(
    specs: Path,
    *,
    detailed_exitcode: bool,
    parallelism: int,
    rehash_all: bool = False,
    out: Path | None = None,
    limits: GuardLimits | None = None,
    output_format: OutputFormat = OutputFormat.TEXT,
    compact: bool = False,
    targets: Sequence[str] = (),
    observe_mode: ObserveMode = ObserveMode.LIST,
    relist: tuple[str, ...] = (),
    scale: Scale = Scale.MEMORY,
) -> int:
    if scale is Scale.STREAM:
        from reconciler.commands.scale import plan_streamed

        return plan_streamed(
            specs,
            detailed_exitcode=detailed_exitcode,
            parallelism=parallelism,
            rehash_all=rehash_all,
            out=out,
            limits=limits or GuardLimits(),
            output_format=output_format,
            compact=compact,
            targets=targets,
            observe_mode=observe_mode,
            relist=relist,
        )
    try:
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
    except UserError as exc:
        if output_format == "markdown":
            # The PR comment is made from stdout: an empty one would read as "nothing to review".
            click.echo(failure_markdown(exc), nl=False)
        raise
    click.echo(render_plan(result, ws.desired, output_format, compact=compact, limits=limits), nl=False)
    if out is not None:
        # Imported here: the saved plan's writer (serialize, savedfile) is no part of a plan that is not saved.
        from reconciler.commands import planfile

        planfile.dump(result, out, limits=limits)
        note_saved(out, applyable=result.applyable, output_format=output_format)
    return plan_exit(errors=bool(result.errors), changes=result.has_changes, detailed_exitcode=detailed_exitcode)
