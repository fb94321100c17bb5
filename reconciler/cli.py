"""The `pixel` command: parse arguments, call a command function, exit with its code.

Each click command calls its function in `reconciler.commands` directly, with typed arguments, and
returns the exit code; `command()` registers it with the flags every command shares and `_exits`
around it (logging, the env file, UserError as one message). Each command imports its module when it
runs: `pixel plan` on every pull request should not pay for the apply machinery (networkx, the lock,
the executor) at start-up.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
from click.core import ParameterSource

from reconciler import commands, progress
from reconciler.choices import Executor, LogFormat, ObserveMode, OutputFormat, Scale
from reconciler.commands.common import error
from reconciler.errors import UserError
from reconciler.logs import configure_logging
from reconciler.plan.guards import DEFAULT_MAX_DELETE, DEFAULT_MAX_SUPERSEDED, GuardLimits

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")


def env_option(
    *decls: str,
    env: str,
    default: object,
    help: str,
    type: click.ParamType[Any, Any] | None = None,
    metavar: str | None = None,
    callback: Callable[[click.Context, click.Parameter, Any], Any] | None = None,
) -> Callable[[F], F]:
    """An option with an environment twin: --help names the variable and shows the default beside it, so what a
    run used without that option can be read off the help."""
    option: Callable[[F], F] = click.option(
        *decls,
        envvar=env,
        show_envvar=True,
        default=default,
        show_default=True,
        help=help,
        type=type,
        metavar=metavar,
        callback=callback,
    )
    return option


# Where a flag's value came from, weakest first: the command line beats its environment twin, which beats the default.
_STRENGTH = {ParameterSource.DEFAULT: 0, ParameterSource.DEFAULT_MAP: 0, ParameterSource.ENVIRONMENT: 1}


def _strength(ctx: click.Context, name: str) -> int:
    source = ctx.get_parameter_source(name)
    return 0 if source is None else _STRENGTH.get(source, 2)


def _inherit(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A global flag not given after the subcommand takes its value from before it (`pixel --specs DIR plan`);
    given before it, it also beats the environment twin the subcommand read (`PIXEL_SPECS`)."""
    name = param.name
    if name is None:
        return value
    best, strength = value, _strength(ctx, name)
    parent = ctx.parent
    while parent is not None:
        if _strength(parent, name) > strength:
            best, strength = parent.params[name], _strength(parent, name)
        parent = parent.parent
    return best


@dataclass
class _Shared:
    """The flags `_exits` acts on, so no command function's signature has to carry them."""

    log_format: LogFormat = LogFormat.CONSOLE
    verbose: bool = False
    quiet: bool = False
    env_file: Path | None = None
    s3_connect_timeout: float | None = None
    s3_read_timeout: float | None = None


def _shared(ctx: click.Context) -> _Shared:
    # ctx.meta is one dict for the group's context and the subcommand's.
    shared = ctx.meta.setdefault("pixel.shared", _Shared())
    assert isinstance(shared, _Shared)
    return shared


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Keep a shared flag for `_exits`: given after the subcommand wins, a default there does not undo one before it."""
    name = param.name
    assert name is not None
    # The group parses first and reads the environment twin too, so after the subcommand only the command line
    # may override what it kept: the twin read there again must not undo a flag given before the subcommand.
    if ctx.parent is None or _strength(ctx, name) == 2:
        setattr(_shared(ctx), name, value)


def common_options(fn: F) -> F:
    """--specs and the logging flags: declared once, accepted before the subcommand and after it (after wins)."""
    fn = env_option(
        "--specs",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("specs"),
        env="PIXEL_SPECS",
        callback=_inherit,
        help="Directory of YAML spec files.",
    )(fn)
    for decls, env, extra, help in (
        (
            ("--log-format",),
            "PIXEL_LOG_FORMAT",
            {"type": EnumChoice(list(LogFormat)), "default": LogFormat.CONSOLE.value, "show_default": True},
            "Log lines on stderr: human console output or JSON lines.",
        ),
        (
            ("--env-file",),
            "PIXEL_ENV_FILE",
            {"type": click.Path(dir_okay=False, path_type=Path), "default": None},
            "Load this dotenv file (KEY=value lines) into the environment first; set variables win.",
        ),
        (("-v", "--verbose"), "PIXEL_VERBOSE", {"is_flag": True}, "Debug logging."),
        (("-q", "--quiet"), "PIXEL_QUIET", {"is_flag": True}, "Only warnings and errors on stderr."),
    ):
        # Remembered rather than passed: each command reads them from the context (_shared), wherever they stood.
        fn = click.option(
            *decls, envvar=env, show_envvar=True, callback=_remember, expose_value=False, help=help, **extra
        )(fn)
    return fn


def deadline_options(fn: F) -> F:
    """How long any S3 request may wait (reconciler/stores/s3/deadlines.py): before or after the subcommand."""
    for flag, env, setting, default, what in (
        ("--s3-connect-timeout", "PIXEL_S3_CONNECT_TIMEOUT", "connect_timeout", "10", "to connect to"),
        ("--s3-read-timeout", "PIXEL_S3_READ_TIMEOUT", "read_timeout", "60", "for each next byte from"),
    ):
        fn = click.option(
            flag,
            type=click.FloatRange(0, min_open=True),
            default=None,
            metavar="SECONDS",
            callback=_remember,
            expose_value=False,
            help=f"Wait at most this long {what} an S3 endpoint, then fail naming it. Env: {env}; "
            f"else the store's `{setting}`; else {default}.",
        )(fn)
    return fn


def _exits(fn: Callable[P, int]) -> Callable[P, NoReturn]:
    """Load the env file, configure logging, call the command, turn UserError into one message and exit 1;
    exit with the code the command returned."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> NoReturn:
        shared = _shared(click.get_current_context())
        configure_logging(shared.log_format, shared.verbose, shared.quiet)
        progress.configure(quiet=shared.quiet)
        try:
            if shared.env_file is not None:
                from reconciler.envfile import load_env_file

                load_env_file(shared.env_file)
            from reconciler.stores.s3.deadlines import overridden

            with overridden(shared.s3_connect_timeout, shared.s3_read_timeout):
                code = fn(*args, **kwargs)
        except UserError as exc:
            error(str(exc))
            code = commands.EXIT_ERROR
        raise SystemExit(code)

    return run


class EnumChoice(click.Choice[str]):
    """click's Choice over some members of one StrEnum, by value, handing the command the member itself."""

    def __init__(self, members: Sequence[StrEnum]) -> None:
        self.enum = type(members[0])
        super().__init__([member.value for member in members])

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> StrEnum:
        return self.enum(super().convert(value, param, ctx))


TEXT_OR_JSON = (OutputFormat.TEXT, OutputFormat.JSON)


def format_option(choices: Sequence[OutputFormat], help: str) -> Callable[[F], F]:
    """--format: what each command can render differs, the option does not (the first choice is the default)."""
    return click.option(
        "--format",
        "output_format",
        type=EnumChoice(choices),
        default=choices[0].value,
        show_default=True,
        help=help,
    )



def scale_option(help: str, default: Scale | None) -> Callable[[F], F]:
    """--scale on plan, apply and show: what streaming means differs per command, the choice does not."""
    return click.option(
        "--scale",
        type=EnumChoice(list(Scale)),
        # By value: click hands a default through the type's conversion, which reads strings.
        default=None if default is None else default.value,
        show_default=default is not None,
        help=help,
    )

rehash_all_option = click.option(
    "--rehash-all",
    is_flag=True,
    help="Read every local file again instead of trusting the hash cache (the cache is refreshed).",
)


def guard_options(fn: F) -> F:
    """The delete guards' limits (see reconciler/plan/guards.py)."""
    fn = click.option(
        "--strict",
        is_flag=True,
        help="Treat every finding (orphan, missing file, conflict, unmanaged object) as an error: exit 1.",
    )(fn)
    fn = click.option(
        "--allow-mass-delete",
        is_flag=True,
        help="Allow a plan that deletes more than 25% of the objects under a mapping's prefix.",
    )(fn)
    for flag, default, help in (
        (
            "--max-superseded",
            DEFAULT_MAX_SUPERSEDED,
            "Refuse a plan that deletes more final-dataset shards superseded by its rebuild than this "
            "(counted apart from --max-delete).",
        ),
        ("--max-delete", DEFAULT_MAX_DELETE, "Refuse a plan that deletes more objects than this."),
    ):
        fn = click.option(flag, type=click.IntRange(0), default=default, show_default=True, help=help)(fn)
    return fn


class Duration(click.ParamType[float, Any]):
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        from reconciler.apply.lock import parse_duration

        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


target_option = click.option(
    "--target",
    "-target",
    "targets",
    multiple=True,
    metavar="NAME",
    help="Only this part of the specs (repeatable, like Terraform's -target): a mapping name, actors/ID, "
    "a dataset name, or final_dataset. Guards and the lock still apply.",
)

parallelism_option = env_option(
    "--parallelism",
    default=16,
    type=click.IntRange(1, 256),
    env="PIXEL_PARALLELISM",
    help="Actions or requests at once.",
)


def observe_options(fn: F) -> F:
    """How the S3 side is observed: listed, or read from S3 Inventory reports (see docs/scale.md)."""
    fn = click.option(
        "--relist-prefix",
        "relist",
        multiple=True,
        metavar="PREFIX",
        help="With --observe inventory: list keys under PREFIX live (repeatable), e.g. what changed since the report.",
    )(fn)
    fn = click.option(
        "--observe",
        "observe_mode",
        type=EnumChoice(list(ObserveMode)),
        default=ObserveMode.LIST.value,
        show_default=True,
        help="list the buckets, or read each store's newest S3 Inventory report (stores with `inventory:`).",
    )(fn)
    return fn


compact_option = click.option(
    "--compact", is_flag=True, help="Text: fold more than 10 like actions under one prefix into one line."
)

plan_format_option = format_option(
    [OutputFormat.TEXT, OutputFormat.MARKDOWN, OutputFormat.JSON],
    "text for a terminal, markdown for a pull-request comment, json (schemas/plan.schema.json) for tools.",
)

plan_file_option = click.argument("plan_file", required=False, type=click.Path(dir_okay=False, path_type=Path))


class _Pixel(click.Group):
    """A usage error (unknown option, bad value, missing argument) exits 1, as every other error does.

    click exits 2 on one, and 2 is what `plan --detailed-exitcode` means by "changes present": a typo in
    a CI script would read as a successful plan with changes (Terraform: 1 for every error). A usage
    error is raised while a context is made (the group's own flags, then the subcommand's, inside
    `invoke`); marking it there leaves click to print it as usual.
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        with _usage_errors_exit_1():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _usage_errors_exit_1():
            return super().invoke(ctx)


@contextlib.contextmanager
def _usage_errors_exit_1() -> Iterator[None]:
    try:
        yield
    except click.UsageError as exc:
        # click reads the code from the instance when it exits; typeshed-style stubs call it a ClassVar, but
        # setting it on this one exception leaves every other use of the class alone.
        exc.exit_code = commands.EXIT_ERROR  # type: ignore[misc]
        raise


@click.group(cls=_Pixel, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pixel-reconciler", prog_name="pixel")
@common_options
@deadline_options
def main(specs: Path) -> None:
    """pixel: declare where training data must live; plan and apply the difference.

    Exit codes: 0 success (no changes with --detailed-exitcode), 1 error (a usage error too),
    2 changes present (plan --detailed-exitcode only).
    """


def command(name: str | None = None) -> Callable[[Callable[P, int]], click.Command]:
    """A subcommand of `main`: the shared flags, and `_exits` around its function that returns an exit code."""

    def register(fn: Callable[P, int]) -> click.Command:
        return main.command(name)(deadline_options(common_options(_exits(fn))))

    return register


@command()
@format_option(TEXT_OR_JSON, "Lines for a person, or one JSON document on stdout (shape: docs/ci.md).")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
def validate(specs: Path, output_format: OutputFormat, files: tuple[Path, ...]) -> int:
    """Check the specs against their schemas without touching any store.

    With FILES (a pre-commit hook's changed spec files), the directory of each is checked as its spec set.
    """
    from reconciler.commands.validate import validate as validate_command

    return validate_command(specs, files, output_format=output_format)


@command()
@click.option("--check", is_flag=True, help="Write nothing; list the files that would change and exit 1 if any.")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
def fmt(specs: Path, check: bool, files: tuple[Path, ...]) -> int:
    """Rewrite spec files (FILES, else every spec in --specs) in pixel's canonical YAML layout, comments kept.

    A file is rewritten only when its formatted text reads as the same data; otherwise it is left as it is.
    """
    from reconciler.commands.fmt import fmt as fmt_command

    return fmt_command(specs, files, check=check)


@command()
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are.")
@parallelism_option
@rehash_all_option
@guard_options
@click.option(
    "-out",
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save the plan as JSON to this file, for `pixel apply FILE` and `pixel show FILE`.",
)
@plan_format_option
@compact_option
@target_option
@observe_options
@scale_option(
    "stream: keep the observation and the plan on disk (bounded memory, for tens of millions of objects; "
    "see docs/scale.md). Prints a summary; save the plan with -out.",
    Scale.MEMORY,
)
def plan(
    specs: Path,
    detailed_exitcode: bool,
    parallelism: int,
    rehash_all: bool,
    max_delete: int,
    max_superseded: int,
    allow_mass_delete: bool,
    strict: bool,
    out: Path | None,
    output_format: OutputFormat,
    compact: bool,
    targets: tuple[str, ...],
    observe_mode: ObserveMode,
    relist: tuple[str, ...],
    scale: Scale,
) -> int:
    """Show what apply would do. Reads only; takes no lock."""
    from reconciler.commands.plan import plan as plan_command

    return plan_command(
        specs,
        detailed_exitcode=detailed_exitcode,
        parallelism=parallelism,
        rehash_all=rehash_all,
        out=out,
        limits=GuardLimits(
            max_delete=max_delete, max_superseded=max_superseded, allow_mass_delete=allow_mass_delete, strict=strict
        ),
        output_format=output_format,
        compact=compact,
        targets=targets,
        observe_mode=observe_mode,
        relist=relist,
        scale=scale,
    )


@command()
@click.option("--auto-approve", is_flag=True, help="Skip the interactive 'yes' confirmation.")
@parallelism_option
@rehash_all_option
@guard_options
@env_option(
    "--lock-timeout",
    type=Duration(),
    default="0",
    env="PIXEL_LOCK_TIMEOUT",
    help="Wait this long (e.g. 30s, 5m) for another apply's lock instead of failing at once.",
)
@format_option(
    [OutputFormat.TEXT, OutputFormat.MARKDOWN, OutputFormat.JSON],
    "text; markdown (the plan as a PR comment, then the text report); or a JSON report on stdout "
    "(done / failed with error code / skipped) for CI.",
)
@compact_option
@target_option
@env_option(
    "--executor",
    type=EnumChoice(list(Executor)),
    default=Executor.LOCAL.value,
    env="PIXEL_EXECUTOR",
    help="local: this machine's thread pool; dask: batches of actions on a Dask cluster (see docs/scale.md).",
)
@env_option(
    "--scheduler",
    env="PIXEL_DASK_SCHEDULER",
    default=None,
    metavar="ADDRESS",
    help="The Dask scheduler for --executor dask, e.g. tcp://HOST:8786.",
)
@env_option(
    "--batch-actions",
    type=click.IntRange(1),
    default=500,
    env="PIXEL_BATCH_ACTIONS",
    help="--executor dask: at most this many actions in one cluster task.",
)
@observe_options
@scale_option(
    "With PLAN_FILE: stream applies it in batches from a spill file, in bounded memory (text report only); "
    "memory reads it whole. Unset: stream above 512 MiB of plan file with a text report (see docs/scale.md).",
    None,
)
@plan_file_option
def apply(
    specs: Path,
    auto_approve: bool,
    parallelism: int,
    rehash_all: bool,
    max_delete: int,
    max_superseded: int,
    allow_mass_delete: bool,
    strict: bool,
    lock_timeout: float,
    output_format: OutputFormat,
    compact: bool,
    targets: tuple[str, ...],
    executor: Executor,
    scheduler: str | None,
    batch_actions: int,
    observe_mode: ObserveMode,
    relist: tuple[str, ...],
    scale: Scale | None,
    plan_file: Path | None,
) -> int:
    """Plan, confirm, then carry out the plan in dependency order.

    With PLAN_FILE (from `pixel plan -out`): apply exactly that plan without a prompt, or refuse
    if the specs changed since it was written. Holds the bucket's lock throughout. A saved plan's
    delete guards are derived again with the limits recorded in it (pass the guard flags to `plan`).
    """
    from reconciler.apply.session import LockOptions
    from reconciler.commands.apply import apply as apply_command
    from reconciler.commands.apply_saved import json_refusals

    with json_refusals(output_format):  # under --format json the refusal is the report on stdout, as the others
        _dask_only(click.get_current_context(), executor)
    limits = GuardLimits(
        max_delete=max_delete, max_superseded=max_superseded, allow_mass_delete=allow_mass_delete, strict=strict
    )
    if plan_file is None and scale is Scale.STREAM:
        raise UserError(
            "--scale stream applies a saved plan: `pixel plan --scale stream -out FILE`, then "
            "`pixel apply --scale stream FILE`"
        )
    if plan_file is not None:
        from reconciler.commands import scale as scaled

        if scaled.streams(scale, plan_file, output_format):
            from reconciler.commands.apply import refuse_for_saved_plan
            from reconciler.commands.apply_saved import choose_executor

            refuse_for_saved_plan(
                targets=targets,
                observe_mode=observe_mode,
                relist=relist,
                rehash_all=rehash_all,
                output_format=output_format,
                compact=compact,
            )
            return scaled.apply_streamed(
                specs,
                plan_file,
                parallelism=parallelism,
                lock=LockOptions(timeout=lock_timeout),
                executor=choose_executor(executor, scheduler, parallelism, batch_actions),
                limits=limits,
                limits_given=_given(click.get_current_context()),
                output_format=output_format,
            )
    return apply_command(
        specs,
        auto_approve=auto_approve,
        parallelism=parallelism,
        rehash_all=rehash_all,
        plan_file=plan_file,
        lock=LockOptions(timeout=lock_timeout),
        limits=limits,
        output_format=output_format,
        compact=compact,
        targets=targets,
        executor=executor,
        scheduler=scheduler,
        batch_actions=batch_actions,
        observe_mode=observe_mode,
        relist=relist,
        given=_given(click.get_current_context()),
    )


def _dask_only(ctx: click.Context, executor: Executor) -> None:
    """--scheduler and --batch-actions on the command line with the local executor: refused, not ignored (the
    user meant a cluster). From the environment they are a standing default, used when dask is chosen."""
    if executor == Executor.DASK:
        return
    typed = [f"--{name.replace('_', '-')}" for name in ("scheduler", "batch_actions")
             if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE]
    if typed:
        raise UserError(f"{' and '.join(typed)} only apply with --executor dask (the executor is local); "
                        "add --executor dask, or leave them out")


def _given(ctx: click.Context) -> frozenset[str]:
    """The options the user set (command line or environment), as opposed to left at their defaults."""
    chosen = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return frozenset(name for name in ctx.params if ctx.get_parameter_source(name) in chosen)


@command()
@plan_format_option
@compact_option
@scale_option(
    "stream: read the file an element at a time and show a summary (counts, the first actions of each kind).",
    Scale.MEMORY,
)
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
def show(specs: Path, output_format: OutputFormat, compact: bool, scale: Scale, plan_file: Path) -> int:
    """Render a plan saved with `pixel plan -out FILE`. Touches no store."""
    if scale is Scale.STREAM:
        from reconciler.commands.scale import show_streamed

        return show_streamed(plan_file, output_format=output_format, compact=compact)
    from reconciler.commands.show import show as show_command

    return show_command(plan_file, output_format=output_format, compact=compact)


@command()
@format_option(
    [OutputFormat.DOT, OutputFormat.MERMAID],
    "Graphviz dot (pipe into `dot -Tsvg`) or a Mermaid flowchart (renders in GitHub markdown).",
)
@parallelism_option
@plan_file_option
def graph(specs: Path, output_format: OutputFormat, parallelism: int, plan_file: Path | None) -> int:
    """The action DAG, one cluster per mapping or tier: from PLAN_FILE, or planned from the specs now."""
    from reconciler.commands.graph import graph as graph_command

    return graph_command(specs, plan_file, output_format=output_format, parallelism=parallelism)


@command("import")
@click.option(
    "--specs-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the spec here (default: SPECS/imported-STORE.yaml).",
)
@click.option("--force", is_flag=True, help="Overwrite --specs-out if it exists.")
@click.argument("target", metavar="STORE:PREFIX")
def import_(specs: Path, specs_out: Path | None, force: bool, target: str) -> int:
    """Write a starting spec (tiers and categories from the key structure) for data already under
    STORE:PREFIX; STORE is an S3 store declared in --specs. Planning against it shows No changes."""
    from reconciler.commands.import_ import import_prefix as import_command

    return import_command(specs, target, specs_out=specs_out, force=force)


@command()
@parallelism_option
@format_option(TEXT_OR_JSON, "Lines for a person, or one JSON document on stdout (shape: docs/ci.md).")
@click.argument("key")
def explain(specs: Path, parallelism: int, output_format: OutputFormat, key: str) -> int:
    """Why the plan does what it does to KEY (an S3 key or local path, optionally STORE:KEY). Reads only."""
    from reconciler.commands.explain import explain as explain_command

    return explain_command(specs, key, parallelism=parallelism, output_format=output_format)


@command()
@format_option(
    [OutputFormat.TEXT, OutputFormat.MARKDOWN, OutputFormat.JSON],
    "A table per tier, actor and mapping (markdown: fenced for a PR comment), or one JSON document on stdout.",
)
@parallelism_option
def status(specs: Path, output_format: OutputFormat, parallelism: int) -> int:
    """Sync status per tier and per actor: synced / local_only / s3_only / out_of_sync, orphans, missing. Reads only."""
    from reconciler.commands.status import status as status_command

    return status_command(specs, output_format=output_format, parallelism=parallelism)


@command("force-unlock")
@click.option("--store", default=None, help="Only this S3 store of the specs (default: every one).")
@click.argument("lock_id")
def force_unlock(specs: Path, store: str | None, lock_id: str) -> int:
    """Remove a stuck apply lock; only when LOCK_ID names its current holder."""
    from reconciler.commands.force_unlock import unlock as force_unlock_command

    return force_unlock_command(specs, lock_id, store=store)


@command()
@env_option(
    "--host",
    default="127.0.0.1",
    env="PIXEL_HOST",
    help="Address to bind; loopback unless told otherwise.",
)
@env_option(
    "--port",
    default=8080,
    type=click.IntRange(0, 65535),
    env="PIXEL_PORT",
    help="TCP port.",
)
@env_option(
    "--max-image-bytes",
    default=10 * 1024 * 1024,
    type=click.IntRange(1),
    env="PIXEL_MAX_IMAGE_BYTES",
    help="Largest JPEG an upload may carry.",
)
@env_option(
    "--status-ttl",
    default=10.0,
    type=click.FloatRange(0),
    env="PIXEL_STATUS_TTL",
    help="Seconds a status observation (the page, /api/status) is reused.",
)
def serve(specs: Path, host: str, port: int, max_image_bytes: int, status_ttl: float) -> int:
    """Serve the actor training-data API (seed 004) and a status page. Mutations need PIXEL_API_TOKEN."""
    from reconciler.commands.serve import serve as serve_command

    return serve_command(specs, host=host, port=port, max_image_bytes=max_image_bytes, status_ttl=status_ttl)


@command()
@click.option("--download", is_flag=True, help="Stream every object and recompute its md5 (reads all the bytes).")
@parallelism_option
@format_option(TEXT_OR_JSON, "Lines for a person, or one JSON document on stdout (shape: docs/ci.md).")
def verify(specs: Path, download: bool, parallelism: int, output_format: OutputFormat) -> int:
    """Re-check the md5 recorded for every managed S3 object; exit 1 on any mismatch."""
    from reconciler.commands.verify import verify as verify_command

    return verify_command(specs, download=download, parallelism=parallelism, output_format=output_format)


@command()
@click.option("--tier", default=None, help="Only the datasets that resolve to this tier now.")
@format_option(TEXT_OR_JSON, "A table, or a JSON array (name, tier, keys, size, md5, status) on stdout.")
def datasets(specs: Path, tier: str | None, output_format: OutputFormat) -> int:
    """The registered datasets: the tier, key(s), size and md5 each resolves to now. Reads only."""
    from reconciler.commands.datasets import datasets as datasets_command

    return datasets_command(specs, tier=tier, output_format=output_format)


@command()
@click.option("--limit", type=click.IntRange(0), default=None, help="Stop after N records.")
@click.option("--category", default=None, help="For a file name: look under this category first (the seed's).")
@click.option(
    "--on-error",
    type=click.Choice(["raise", "skip"]),
    default="raise",
    show_default=True,
    help="A malformed record: stop with its key and line, or skip it (counted in a warning).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Never contact S3: resolve from the local registry or kept final manifest, read verified cached copies.",
)
@click.argument("name")
def cat(specs: Path, limit: int | None, category: str | None, on_error: str, offline: bool, name: str) -> int:
    """Stream the records of dataset NAME to stdout as JSON lines (through the verified cache)."""
    from reconciler.commands.datasets import cat as cat_command

    return cat_command(specs, name, category=category, limit=limit, on_error=on_error, offline=offline)


if __name__ == "__main__":
    main()
