"""`pixel plan`: observe, plan and guard; print the plan, optionally save it (-out) for `pixel apply FILE`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import click

from reconciler.choices import ObserveMode, OutputFormat, Scale
from reconciler.commands import noop_memo
from reconciler.commands.common import load, note_saved, plan_exit, plan_opened, plan_workspace
from reconciler.commands.output import fenced, render_plan
from reconciler.errors import UserError
from reconciler.logs import get_logger
from reconciler.model import Plan
from reconciler.plan.guards import GuardLimits
from reconciler.progress import observe_progress
from reconciler.spec import SpecErrors
from reconciler.workflow import guarded_plan, open_stores
from reconciler.workspace import Workspace


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
        if out is None and not rehash_all and observe_mode is ObserveMode.LIST and not relist and not targets and (
            output_format in (OutputFormat.TEXT, OutputFormat.JSON) and noop_memo.wanted(os.environ)
        ):
            options = noop_memo.Options(output_format, detailed_exitcode, compact, limits, parallelism)
            answered = memoized(specs, options)
            if isinstance(answered, int):
                return answered
            ws, result = answered
        else:
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


def memoized(specs: Path, options: noop_memo.Options) -> int | tuple[Workspace, Plan]:
    """The plan through the no-op memo (commands/noop_memo.py): the exit code when the memo answered or the
    full plan it replayed was printed here; else the workspace and plan for `plan` to print, as without it."""
    limits = options.limits
    ws = open_stores(load(specs), parallelism=options.parallelism, on_first_use=True)
    if not noop_memo.in_scope(ws):
        return ws, plan_opened(ws, limits=limits, output_format=options.output_format)
    try:
        memo = noop_memo.Memo(ws, specs, options)
    except Exception:  # any failure to read the inputs is the full plan's to meet and word
        return plan_workspace(specs, options.parallelism, limits=limits, output_format=options.output_format)
    recorded = memo.answer()
    if recorded is not None:
        click.echo(recorded.stdout, nl=False)
        get_logger("pixel.observe").info("local files hashed", **recorded.hashed)
        return recorded.exit
    replayed = memo.replaying(ws)
    try:
        with observe_progress(output_format=options.output_format) as progress:
            observed, result = guarded_plan(replayed, limits, progress=progress)
    except noop_memo.ReplayMismatch:
        return plan_workspace(specs, options.parallelism, limits=limits, output_format=options.output_format)
    text = render_plan(result, ws.desired, options.output_format, compact=options.compact, limits=limits)
    click.echo(text, nl=False)
    code = plan_exit(
        errors=bool(result.errors), changes=result.has_changes, detailed_exitcode=options.detailed_exitcode
    )
    # A hit reads no file and asks no cache: its event says so, the files the plan answered counted as cached.
    known = sum(len(m.local) for m in observed.mappings.values())
    memo.record(result, text, code, {"read": 0, "bytes_read": 0, "from_cache": known}, replayed)
    return code
