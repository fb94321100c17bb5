"""`pixel plan --scale stream`: observe into the spill, plan there, print a summary, save the plan streamed.

The same steps as `pixel plan` (load the specs, open the stores, observe, plan, guard against the full
specs, print, save), with the observation and the plan kept in a SQLite file under the cache directory
instead of in memory. The output is a summary (counts per kind, the first actions of each, the findings
counted, every error): a plan of ten million actions is reviewed from its saved file, not a terminal.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from reconciler.choices import ObserveMode, OutputFormat
from reconciler.commands import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.commands.common import load, observe_through, say
from reconciler.errors import UserError
from reconciler.keys import printable
from reconciler.logs import get_logger
from reconciler.model import Action
from reconciler.observe.hashcache import CachedHasher
from reconciler.paths import cache_dir
from reconciler.plan.guards import GuardLimits
from reconciler.plan.summary import shown
from reconciler.progress import observe_progress
from reconciler.scale.observe import observe_spilled
from reconciler.scale.planfile import write_streamed
from reconciler.scale.planner import StreamedPlan, stream_plan
from reconciler.scale.reader import read_into
from reconciler.scale.spill import Spill
from reconciler.stores.base import StoreError
from reconciler.targets import narrow
from reconciler.units import human_bytes
from reconciler.workflow import open_stores
from reconciler.workspace import Workspace

SHOWN_PER_KIND = 10  # actions listed under each kind in the summary; the saved plan holds them all


def spill_parent() -> Path:
    """Where spills go: `spill/` in the cache directory (PIXEL_CACHE_DIR, XDG_CACHE_HOME/pixel, ~/.cache/pixel)."""
    return cache_dir(os.environ) / "spill"


@contextmanager
def streamed_plan(
    ws: Workspace,
    limits: GuardLimits,
    *,
    targets: Sequence[str] = (),
    rehash_all: bool = False,
    output_format: OutputFormat = OutputFormat.TEXT,
) -> Iterator[StreamedPlan]:
    """Observe and plan `ws` in a spill; the spill (and the plan in it) is removed when the block ends."""
    desired = narrow(ws.desired, targets)
    kept = {a.actor_id for a in desired.actors}
    hasher = CachedHasher(rehash_all=rehash_all)
    with Spill(spill_parent()) as spill:
        try:
            with observe_progress(output_format=output_format) as progress:
                observed = observe_spilled(
                    desired,
                    ws.observing,
                    hasher,
                    spill,
                    progress=progress,
                    discovered=tuple(d for d in ws.discovered if d.actor_id in kept),
                )
        except StoreError as exc:
            raise UserError(f"could not read the stores: {exc}") from exc
        finally:
            hasher.close()
            get_logger("pixel.observe").info(
                "local files hashed", read=hasher.files_read, bytes_read=hasher.bytes_read, from_cache=hasher.cache_hits
            )
        yield stream_plan(desired, observed, spill, limits, guard_desired=ws.desired)


def summary_text(streamed: StreamedPlan, per_kind: int = SHOWN_PER_KIND) -> str:
    """Counts per kind, the first `per_kind` actions of each, findings counted, every error, the verdict."""
    lines: list[str] = []
    counts = streamed.tallies
    firsts = streamed.first_actions(per_kind)
    for name in shown(counts):
        tally = counts[name]
        if not tally.count:
            continue
        lines.append(f"{name}: {tally.count:,} ({human_bytes(tally.bytes)})")
        lines += (f"  {_line(action)}" for action in firsts.get(name, []))
        if tally.count > per_kind:
            lines.append(f"  ... and {tally.count - per_kind:,} more")
    if streamed.findings_count:
        lines.append(f"{streamed.findings_count:,} finding(s): see the saved plan (pixel show FILE)")
    lines += (f"Error: {error}" for error in streamed.errors)
    summary = ", ".join(f"{counts[name].count:,} to {name}" for name in shown(counts))
    if streamed.errors:
        lines.append(f"Plan refused: {len(streamed.errors)} error(s) above; nothing will be applied ({summary}).")
    elif streamed.actions_count:
        lines.append(f"Plan: {summary}.")
    else:
        lines.append("No changes to apply." if streamed.findings_count else "No changes. Storage matches the specs.")
    return "\n".join(printable(line) for line in lines) + "\n"


def summary_markdown(streamed: StreamedPlan, per_kind: int = SHOWN_PER_KIND) -> str:
    """`summary_text` as a pull-request comment: a table of counts, the first actions of each kind folded."""
    counts = streamed.tallies
    verdict = "refused" if streamed.errors else ("changes" if streamed.actions_count else "no changes")
    lines = [f"### pixel plan (streamed): {streamed.actions_count:,} actions, {verdict}", ""]
    if streamed.actions_count:
        lines += ["| kind | count | bytes |", "|---|---:|---:|"]
        lines += (
            f"| {name} | {counts[name].count:,} | {human_bytes(counts[name].bytes)} |"
            for name in shown(counts)
            if counts[name].count
        )
        lines.append("")
    for name, actions in streamed.first_actions(per_kind).items():
        if not actions:
            continue
        more = counts[name].count - len(actions)
        title = f"{name}: the first {len(actions):,}" + (f" of {counts[name].count:,}" if more else "")
        lines += [f"<details><summary>{title}</summary>", "", _fenced([_line(a) for a in actions]), "</details>", ""]
    if streamed.findings_count:
        lines += [f"{streamed.findings_count:,} finding(s): see the saved plan (`pixel show FILE`).", ""]
    if streamed.errors:
        lines += ["**The plan is refused:**", "", _fenced(list(streamed.errors))]
    return "\n".join(lines).rstrip("\n") + "\n"


def _fenced(lines: Sequence[str]) -> str:
    """A code block no line can close early: the fence is longer than any backtick run in it."""
    text = "\n".join(printable(line) for line in lines)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _line(action: Action) -> str:
    source = f" <- {action.source}" if action.source is not None else ""
    return f"{action.kind.value} {action.target}{source}: {action.reason}"


def plan_streamed(
    specs: Path,
    *,
    detailed_exitcode: bool,
    parallelism: int,
    rehash_all: bool,
    out: Path | None,
    limits: GuardLimits,
    output_format: OutputFormat,
    compact: bool,
    targets: Sequence[str],
    observe_mode: ObserveMode,
    relist: tuple[str, ...],
) -> int:
    if output_format == "json" or compact:
        raise UserError(
            "--scale stream prints a summary (text or markdown); save the plan with -out FILE for the whole of it"
        )
    desired = load(specs)
    ws = open_stores(desired, parallelism=parallelism)
    ws = observe_through(ws, observe_mode, relist)
    with streamed_plan(ws, limits, targets=targets, rehash_all=rehash_all, output_format=output_format) as result:
        click.echo(_summary(result, output_format), nl=False)
        if out is not None:
            write_streamed(result, out, limits=limits)
            how = "apply it with" if result.applyable else "it cannot be applied (errors above); review it with"
            command = f"pixel {'apply' if result.applyable else 'show'} {out}"
            say("\n" + printable(f"Saved the plan to {out}: {how} `{command}`.") + "\n", err=output_format != "text")
        if result.errors:
            return EXIT_ERROR
        if detailed_exitcode and result.actions_count:
            return EXIT_CHANGES
        return EXIT_OK


def _summary(streamed: StreamedPlan, output_format: OutputFormat) -> str:
    return summary_markdown(streamed) if output_format == "markdown" else summary_text(streamed)


def show_streamed(plan_file: Path, *, output_format: OutputFormat, compact: bool) -> int:
    """`pixel show FILE --scale stream`: the file read into a spill an element at a time, then summarised."""
    if output_format == "json" or compact:
        raise UserError("--scale stream shows a summary (text or markdown); without it, show renders the whole plan")
    with Spill(spill_parent()) as spill:
        streamed = read_into(plan_file, spill)
        if output_format == "text":
            applyable = "yes" if streamed.applyable else "no (it was saved with errors)"
            digest = f"spec digest {streamed.spec_digest[:12]}…"
            click.echo(printable(f"Saved plan {plan_file} ({digest}, applyable: {applyable})"))
            click.echo(f"Targets: {', '.join(streamed.targets) if streamed.targets else 'none (all of the specs)'}\n")
        click.echo(_summary(streamed, output_format), nl=False)
    return EXIT_OK
