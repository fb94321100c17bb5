"""`pixel apply FILE` and the end of every apply: exactly the saved plan, or a refusal; text or JSON report.

A saved plan is checked before anything is touched (no lock, no write): fresh
(same spec digest), saved without errors, and every action one the current
specs allow, with its preconditions (reconciler/plan/saved_checks.py).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Set
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import click

from reconciler.apply.executor import ApplyResult, LocalExecutor, PlanExecutor
from reconciler.apply.jsonreport import ReportStatus, render_json, report_dict
from reconciler.apply.report import LogReporter, render_apply_summary
from reconciler.apply.runner import ByteCounts
from reconciler.apply.session import LockOptions, locked, run_locked
from reconciler.choices import Executor, OutputFormat
from reconciler.commands import EXIT_ERROR, EXIT_OK, common, planfile
from reconciler.commands.common import load
from reconciler.errors import UserError
from reconciler.keys import printable
from reconciler.model import Plan
from reconciler.plan import saved_checks
from reconciler.plan.guards import GuardLimits
from reconciler.plan.summary import summary_line
from reconciler.progress import apply_progress
from reconciler.workflow import open_stores
from reconciler.workspace import Workspace


class StalePlan(UserError):
    """The specs changed since the plan file was written."""


def choose_executor(name: Executor, scheduler: str | None, parallelism: int, batch_actions: int = 500) -> PlanExecutor:
    """`--executor local` (this machine's thread pool) or `--executor dask` (a cluster's scheduler address)."""
    if name == Executor.LOCAL:
        return LocalExecutor(parallelism)
    if not scheduler:
        raise UserError("--executor dask needs the scheduler's address: --scheduler tcp://HOST:8786 "
                        "or PIXEL_DASK_SCHEDULER")
    from reconciler.apply.dask_executor import DaskExecutor

    return DaskExecutor(scheduler, parallelism=parallelism, max_actions=batch_actions)


def say(text: str, output_format: OutputFormat) -> None:
    """Human text: stdout normally, stderr under --format json so stdout stays one JSON document."""
    common.say(text, err=output_format == "json")


def finish(result: ApplyResult, runner: ByteCounts, plan: Plan, output_format: OutputFormat) -> int:
    if output_format == "json":
        click.echo(render_json(report_dict(result, spec_digest=plan.spec_digest, runner=runner)), nl=False)
    else:
        click.echo(render_apply_summary(result, runner), nl=False)
    return EXIT_OK if result.ok else EXIT_ERROR


def refuse_json(exc: UserError, output_format: OutputFormat, spec_digest: str = "") -> None:
    if output_format == "json":
        report = report_dict(None, spec_digest=spec_digest, status=ReportStatus.ERROR, errors=(str(exc),))
        click.echo(render_json(report), nl=False)


@contextmanager
def json_refusals(output_format: OutputFormat) -> Iterator[None]:
    """Under --format json, a UserError raised inside also leaves its report on stdout: CI reads one report
    whatever stopped the apply."""
    try:
        yield
    except UserError as exc:
        refuse_json(exc, output_format)
        raise


def run_reported(
    ws: Workspace,
    plan: Plan,
    lost: threading.Event,
    *,
    parallelism: int,
    executor: PlanExecutor | None,
    output_format: OutputFormat,
) -> tuple[ApplyResult, ByteCounts]:
    """`run_locked` (the lock held, `lost` set once it is lost) with progress shown as --format allows."""
    with apply_progress(LogReporter(), plan, output_format=output_format) as reporter:
        return run_locked(ws, plan, parallelism=parallelism, reporter=reporter, lost=lost, executor=executor)


def tightened(saved: GuardLimits, given: GuardLimits, given_names: Set[str]) -> GuardLimits:
    """The saved plan's guard limits, made stricter by the guard flags given at apply; a flag that would
    loosen them is refused. The plan was reviewed under its own limits: `apply` may only narrow what it
    lets through, never silently ignore a limit asked for (`--max-delete 5` on a plan of 60 deletes).

    By the limits' names, so a guard added later follows the same rule: a `max_*` count given may only be
    lowered, an `allow_*` permission only kept as the plan had it, `strict` only turned on.
    """
    limits = saved
    for field in dataclasses.fields(GuardLimits):
        name, flag = field.name, "--" + field.name.replace("_", "-")
        asked, recorded = getattr(given, name), getattr(saved, name)
        if name.startswith("max_") and name in given_names:
            if asked > recorded:
                raise UserError(
                    f"{flag} {asked} would loosen the saved plan's {flag} {recorded}: a saved plan's guards can "
                    f"only be tightened at apply; make the plan again with `pixel plan {flag} {asked} -out FILE`, "
                    "review it, then apply it"
                )
            limits = dataclasses.replace(limits, **{name: asked})
        elif name.startswith("allow_") and asked and not recorded:
            raise UserError(
                f"{flag} would loosen the saved plan's guards, which were checked without it: make the plan "
                f"again with `pixel plan {flag} -out FILE`, review it, then apply it"
            )
        elif name == "strict" and asked:
            limits = dataclasses.replace(limits, strict=True)
    return limits


class SavedPlan(Protocol):
    """What `check_fresh` reads of a saved plan, read whole (Plan) or into a spill (scale.planner.StreamedPlan)."""

    @property
    def spec_digest(self) -> str: ...

    @property
    def errors(self) -> tuple[str, ...]: ...

    @property
    def applyable(self) -> bool: ...


def check_fresh(plan: SavedPlan, current_digest: str, plan_file: Path, specs: Path) -> None:
    if plan.spec_digest != current_digest:
        raise StalePlan(
            f"plan is stale: the specs in {specs} changed since {plan_file} was written "
            f"(spec digest {plan.spec_digest[:12]}… then, {current_digest[:12]}… now); nothing was touched. "
            f"Run `pixel plan -out {plan_file}` again, review it, then apply it"
        )
    if not plan.applyable:
        raise UserError(
            f"{printable(str(plan_file))} cannot be applied: it was saved with errors:\n  "
            + "\n  ".join(map(printable, plan.errors))
        )


def apply_saved(
    specs: Path,
    plan_file: Path,
    *,
    parallelism: int,
    lock: LockOptions,
    output_format: OutputFormat = OutputFormat.TEXT,
    executor: PlanExecutor | None = None,
    limits: GuardLimits | None = None,
    limits_given: Set[str] = frozenset(),
) -> int:
    """Apply exactly the actions in `plan_file`; refuse before touching anything when it is stale or unsafe.

    `limits`: the guard flags given at apply (`limits_given` names the ones given explicitly), which may only
    tighten the limits the file records.
    """
    with json_refusals(output_format):
        saved = planfile.load_saved(plan_file)
        plan = saved.plan
        enforced = tightened(saved.limits, limits or GuardLimits(), limits_given)
        desired = load(specs)
        check_fresh(plan, desired.spec_digest, plan_file, specs)
        if not plan.has_changes:
            say(f"{plan_file}: {summary_line(plan)}\n", output_format)
            if output_format == "json":
                report = report_dict(None, spec_digest=plan.spec_digest, status=ReportStatus.NO_CHANGES)
                click.echo(render_json(report), nl=False)
            return EXIT_OK
        ws = open_stores(desired, parallelism=parallelism)
        # ws.desired: the specs plus the actors discovered at the edge, as `plan` saw them. Before the lock.
        saved_checks.check(ws.desired, plan, enforced, plan_file=str(plan_file))
        say(f"Applying the saved plan {plan_file}: {summary_line(plan)}\n", output_format)
        with locked(ws, lock) as (ws, lost):
            result, runner = run_reported(
                ws, plan, lost, parallelism=parallelism, executor=executor, output_format=output_format
            )
    return finish(result, runner, plan, output_format)
