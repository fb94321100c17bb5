"""What every command shares: loading specs, observing and planning, and what it says on stdout and stderr."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import click

from reconciler.choices import ObserveMode, OutputFormat
from reconciler.commands import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.errors import UserError
from reconciler.keys import printable
from reconciler.logs import get_logger, json_logs
from reconciler.model import Desired, Plan
from reconciler.plan.guards import GuardLimits
from reconciler.progress import observe_progress
from reconciler.spec import load_specs
from reconciler.workflow import from_inventory, guarded_plan, open_stores
from reconciler.workspace import Workspace


def error(message: str) -> None:
    """One "Error:" message on stderr, or under --log-format json one JSON log event (stderr stays JSON lines).

    Its parts that came from data (keys, paths, plan files) were escaped where the message was put together;
    what is left (its own line breaks) is kept, the rest escaped too.
    """
    if json_logs():
        get_logger("pixel").error("error", message=message)
        return
    click.echo("Error: " + "\n".join(printable(line) for line in message.split("\n")), err=True)


def say(text: str, *, err: bool) -> None:
    """Text for a person, on stdout or stderr. On stderr under --log-format json it is one JSON log event
    instead: CI reading stderr as JSON lines must not meet a line of prose among them."""
    if err and json_logs():
        get_logger("pixel").info("note", message=text.strip("\n"))
        return
    click.echo(text, nl=False, err=err)


def note_saved(out: Path, *, applyable: bool, output_format: OutputFormat) -> None:
    """Where `plan -out` put the plan and the command that takes it on. Only text output has room for the note on
    stdout: markdown and json must stay one document."""
    how = "apply it with" if applyable else "it cannot be applied (errors above); review it with"
    command = f"pixel {'apply' if applyable else 'show'} {out}"
    say("\n" + printable(f"Saved the plan to {out}: {how} `{command}`.") + "\n", err=output_format != "text")


def plan_exit(*, errors: bool, changes: bool, detailed_exitcode: bool) -> int:
    """`pixel plan`'s exit code: 1 for a plan with errors; with --detailed-exitcode, 2 for one with changes."""
    if errors:
        return EXIT_ERROR
    if detailed_exitcode and changes:
        return EXIT_CHANGES
    return EXIT_OK


def load(specs: Path) -> Desired:
    """Load and validate the specs; every problem is printed and UserError raised."""
    loaded = load_specs(specs, os.environ)
    if isinstance(loaded, Desired):
        return loaded
    for problem in loaded.errors:
        error(str(problem))
    count = len(loaded.errors)
    problems = f"{count} problem{'' if count == 1 else 's'}"
    raise UserError(f"{problems} in the specs in {specs}/; nothing was touched") from loaded


def observe_through(
    ws: Workspace, observe_mode: ObserveMode, relist: tuple[str, ...], *, spool: Path | None = None
) -> Workspace:
    """`--observe inventory`: the S3 side from S3 Inventory reports; `--relist-prefix` only makes sense with it.

    `spool`: where a streamed plan keeps the reports' data files (see `workflow.from_inventory`).
    """
    if observe_mode == ObserveMode.INVENTORY:
        return from_inventory(ws, relist, spool=spool)
    if relist:
        raise UserError("--relist-prefix lists prefixes live instead of from the inventory: use --observe inventory")
    return ws


def plan_workspace(
    specs: Path,
    parallelism: int,
    *,
    rehash_all: bool = False,
    limits: GuardLimits | None = None,
    output_format: OutputFormat = OutputFormat.TEXT,
    targets: Sequence[str] = (),
    observe_mode: ObserveMode = ObserveMode.LIST,
    relist: tuple[str, ...] = (),
) -> tuple[Workspace, Plan]:
    """Load, observe and plan (only `targets`, when given); the delete guards always run (default limits if none)."""
    ws = open_stores(load(specs), parallelism=parallelism, on_first_use=True)
    return ws, plan_opened(
        observe_through(ws, observe_mode, relist),
        rehash_all=rehash_all, limits=limits, output_format=output_format, targets=targets,
    )


def plan_opened(
    ws: Workspace,
    *,
    rehash_all: bool = False,
    limits: GuardLimits | None = None,
    output_format: OutputFormat = OutputFormat.TEXT,
    targets: Sequence[str] = (),
) -> Plan:
    """Observe and plan a workspace whose stores are open, with progress as `output_format` wants it."""
    with observe_progress(output_format=output_format) as progress:
        return guarded_plan(ws, limits, rehash_all=rehash_all, progress=progress, targets=targets)[1]
