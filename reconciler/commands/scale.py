"""`pixel plan --scale stream`: observe into the spill, plan there, print a summary, save the plan streamed.

The same steps as `pixel plan` (load the specs, open the stores, observe, plan, guard against the full
specs, print, save), with the observation and the plan kept in a SQLite file under the cache directory
instead of in memory. The output is a summary (counts per kind, the first actions of each, the findings
counted, every error): a plan of ten million actions is reviewed from its saved file, not a terminal.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence, Set
from contextlib import contextmanager
from pathlib import Path

import click

from reconciler.apply.executor import DONE, FAILED, SKIPPED, PlanExecutor
from reconciler.apply.history import record_apply
from reconciler.apply.report import LogReporter, render_summary
from reconciler.apply.session import LockOptions, abort_leftover_uploads, locked, managed_s3_stores
from reconciler.choices import ObserveMode, OutputFormat, Scale
from reconciler.commands import EXIT_ERROR, EXIT_OK
from reconciler.commands.apply_saved import check_fresh, tightened
from reconciler.commands.common import load, note_saved, observe_through, plan_exit, say
from reconciler.commands.output import fenced
from reconciler.errors import UserError
from reconciler.keys import printable
from reconciler.logs import get_logger
from reconciler.model import Action, S3StoreSpec
from reconciler.observe.hashcache import CachedHasher
from reconciler.paths import cache_dir
from reconciler.plan.guards import GuardLimits
from reconciler.plan.summary import shown
from reconciler.progress import observe_progress
from reconciler.scale import apply as stream_checks
from reconciler.scale.apply import DEFAULT_BATCH, StreamedResult, compute_levels, run_levels
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
    observe_mode: ObserveMode = ObserveMode.LIST,
    relist: tuple[str, ...] = (),
) -> Iterator[StreamedPlan]:
    """Observe and plan `ws` in a spill; the spill (and the plan in it) is removed when the block ends."""
    desired = narrow(ws.desired, targets)
    kept = {a.actor_id for a in desired.actors}
    with Spill(spill_parent()) as spill:
        # An inventory report's data files go into the spill's directory: removed with it, also after a kill.
        ws = observe_through(ws, observe_mode, relist, spool=spill.directory)
        hasher = CachedHasher(rehash_all=rehash_all)
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
        lines += [f"<details><summary>{title}</summary>", "", fenced([_line(a) for a in actions]), "</details>", ""]
    if streamed.findings_count:
        lines += [f"{streamed.findings_count:,} finding(s): see the saved plan (`pixel show FILE`).", ""]
    if streamed.errors:
        lines += ["**The plan is refused:**", "", fenced(list(streamed.errors))]
    return "\n".join(lines).rstrip("\n") + "\n"


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
    with streamed_plan(
        ws,
        limits,
        targets=targets,
        rehash_all=rehash_all,
        output_format=output_format,
        observe_mode=observe_mode,
        relist=relist,
    ) as result:
        click.echo(_summary(result, output_format), nl=False)
        if out is not None:
            write_streamed(result, out, limits=limits)
            note_saved(out, applyable=result.applyable, output_format=output_format)
        return plan_exit(
            errors=bool(result.errors), changes=bool(result.actions_count), detailed_exitcode=detailed_exitcode
        )


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


# Above this size a saved plan is applied streamed unless --scale says otherwise: about a million actions,
# which the in-memory apply holds in a few GiB (a networkx node and an outcome per action).
STREAM_ABOVE_BYTES = 512 * 1024 * 1024


def streams(scale: Scale | None, plan_file: Path, output_format: OutputFormat) -> bool:
    """Whether `pixel apply FILE` streams: as asked, or (no --scale) when the file is large and the report text."""
    if scale is not None:
        return scale is Scale.STREAM
    try:
        large = plan_file.stat().st_size > STREAM_ABOVE_BYTES
    except OSError:
        return False  # the in-memory reading words the refusal of a missing file
    return large and output_format == OutputFormat.TEXT


def streamed_summary(result: StreamedResult) -> str:
    """`apply.report.render_apply_summary`'s report from counts: the done actions are not kept."""
    return render_summary(
        result.done,
        result.failed,
        result.skipped,
        ok=result.ok,
        interrupted=result.interrupted or bool(result.not_started),
        runner=result.bytes,
        untracked=result.not_started,
    )


def apply_streamed(
    specs: Path,
    plan_file: Path,
    *,
    parallelism: int,
    lock: LockOptions,
    executor: PlanExecutor,
    limits: GuardLimits,
    limits_given: Set[str],
    output_format: OutputFormat,
    batch: int = DEFAULT_BATCH,
) -> int:
    """`pixel apply --scale stream FILE`: `apply_saved.apply_saved`'s checks and run, the plan kept in a spill.

    Refused before anything is touched exactly when `pixel apply FILE` refuses: the file read whole into the
    spill (schema, ids, edges, guard digest, summary), fresh, saved without errors, every action one the
    current specs allow with its preconditions, the guards with the limits tightened by the flags given.
    """
    if output_format != OutputFormat.TEXT:
        raise UserError(
            "--scale stream reports in text: a JSON report would list every action done; "
            "apply without --scale stream for --format json"
        )
    with Spill(spill_parent()) as spill:
        streamed = read_into(plan_file, spill)
        enforced = tightened(streamed.limits, limits, limits_given)
        desired = load(specs)
        check_fresh(streamed, desired.spec_digest, plan_file, specs)
        verdict = summary_text(streamed, per_kind=0).splitlines()[-1]
        if not streamed.actions_count:
            say(printable(f"{plan_file}: {verdict}") + "\n", err=False)
            return EXIT_OK
        ws = open_stores(desired, parallelism=parallelism)
        stream_checks.check(ws.desired, streamed, enforced, plan_file=str(plan_file))
        levels = compute_levels(streamed)  # a cycle is refused here, before the lock and any write
        say(printable(f"Applying the saved plan {plan_file} streamed: {verdict}") + "\n", err=False)
        with locked(ws, lock) as (held, lost):
            abort_leftover_uploads(held)
            result = run_levels(
                streamed, held.desired, held.stores, executor, reporter=LogReporter(), stop=lost, batch=batch,
                levels=levels,
            )
            buckets = [
                spec
                for name in managed_s3_stores(held.desired)
                if isinstance(spec := held.desired.stores[name], S3StoreSpec)
            ]
            skipped = len(result.skipped) + result.not_started
            tally: dict[str, int] = {DONE: result.done, FAILED: len(result.failed), SKIPPED: skipped}
            record_apply(buckets, counts=tally, targets=streamed.targets, ok=result.ok)
    click.echo(streamed_summary(result), nl=False)
    return EXIT_OK if result.ok else EXIT_ERROR
