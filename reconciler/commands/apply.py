"""`pixel apply`: lock, observe, plan, preview, confirm, execute; or, given a plan file, exactly that plan.

The saved-plan path and the report at the end are in apply_saved.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence, Set
from pathlib import Path

import click

from reconciler.apply.session import LockOptions, locked
from reconciler.choices import Executor, ObserveMode, OutputFormat
from reconciler.commands import EXIT_ERROR, EXIT_OK
from reconciler.commands.apply_saved import (
    apply_saved,
    choose_executor,
    finish,
    json_refusals,
    refuse_json,
    run_reported,
    say,
)
from reconciler.commands.common import error, load, observe_through
from reconciler.commands.output import render_preview
from reconciler.errors import UserError
from reconciler.logs import get_logger, json_logs
from reconciler.model import Desired, Plan
from reconciler.plan.guards import GuardLimits
from reconciler.plan.summary import closing_line
from reconciler.progress import observe_progress
from reconciler.workflow import guarded_plan, open_stores


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


def preview(plan: Plan, desired: Desired, output_format: OutputFormat, compact: bool) -> None:
    """The plan before it is applied. Under --format json it goes to stderr (see say) as text; with
    --log-format json as well, as one `plan` event with the closing line: stderr stays JSON lines."""
    if output_format == "json" and json_logs():
        get_logger("pixel.apply").info("plan", summary=closing_line(plan), actions=len(plan.actions))
        return
    shown = OutputFormat.MARKDOWN if output_format == OutputFormat.MARKDOWN else OutputFormat.TEXT
    say(render_preview(plan, desired, shown, compact=compact), output_format)


def refuse_for_saved_plan(
    *,
    targets: Sequence[str],
    observe_mode: ObserveMode,
    relist: tuple[str, ...],
    rehash_all: bool,
    output_format: OutputFormat,
    compact: bool,
) -> None:
    """A flag that shapes the plan or its preview has nothing to act on in a saved plan: refused, never ignored."""
    if targets:
        raise UserError("--target goes with `pixel plan -out FILE`: a saved plan applies the targets it records")
    if observe_mode != "list" or relist:
        raise UserError("a saved plan was observed when it was made: pass --observe to `pixel plan -out`")
    if rehash_all:
        raise UserError(
            "--rehash-all re-reads local files to make a plan; a saved plan was made already: pass it to "
            "`pixel plan -out FILE` (at apply, a local file changed since the plan fails its precondition)"
        )
    if output_format == "markdown" or compact:
        flag = "--compact" if compact else "--format markdown"
        raise UserError(
            f"{flag} shapes the plan's preview, and `pixel apply FILE` prints none: render the saved plan with "
            f"`pixel show {flag} FILE`"
        )


def apply(
    specs: Path,
    *,
    auto_approve: bool,
    parallelism: int,
    rehash_all: bool = False,
    plan_file: Path | None = None,
    lock: LockOptions | None = None,
    limits: GuardLimits | None = None,
    output_format: OutputFormat = OutputFormat.TEXT,
    compact: bool = False,
    targets: Sequence[str] = (),
    executor: Executor = Executor.LOCAL,
    scheduler: str | None = None,
    batch_actions: int = 500,
    observe_mode: ObserveMode = ObserveMode.LIST,
    relist: tuple[str, ...] = (),
    given: Set[str] = frozenset(),
) -> int:
    """`given`: the options given explicitly (on the command line or through the environment), by parameter
    name: with a saved plan `--max-delete` tightens its guards only when given, since it has a default."""
    lock = lock or LockOptions()
    with json_refusals(output_format):
        chosen = choose_executor(executor, scheduler, parallelism, batch_actions)
        if plan_file is not None:
            refuse_for_saved_plan(
                targets=targets, observe_mode=observe_mode, relist=relist, rehash_all=rehash_all,
                output_format=output_format, compact=compact,
            )
    if plan_file is not None:
        return apply_saved(
            specs,
            plan_file,
            parallelism=parallelism,
            lock=lock,
            output_format=output_format,
            executor=chosen,
            limits=limits,
            limits_given=given,
        )
    with json_refusals(output_format):
        desired = load(specs)
        ws = open_stores(desired, parallelism=parallelism)
        ws = observe_through(ws, observe_mode, relist)
        # Lock before observing: the plan must not be made from a bucket another apply is changing.
        with locked(ws, lock) as (ws, lost):
            with observe_progress(output_format=output_format) as progress:
                _, plan = guarded_plan(ws, limits, rehash_all=rehash_all, progress=progress, targets=targets)
            preview(plan, ws.desired, output_format, compact)
            if plan.errors:
                refuse_json(UserError("the plan has errors: " + "; ".join(plan.errors)), output_format)
                return EXIT_ERROR
            if not plan.has_changes:
                return EXIT_OK
            if not confirmed(auto_approve):
                return EXIT_ERROR
            result, runner = run_reported(
                ws, plan, lost, parallelism=parallelism, executor=chosen, output_format=output_format
            )
    return finish(result, runner, plan, output_format)
