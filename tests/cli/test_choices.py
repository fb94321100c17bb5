"""The closed choices of the command line are StrEnums: click lists their values, commands get the members."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from reconciler.choices import Executor, LogFormat, ObserveMode, OutputFormat
from reconciler.cli import main

ENUMS: dict[str, type[StrEnum]] = {
    "output_format": OutputFormat,
    "observe_mode": ObserveMode,
    "executor": Executor,
    "log_format": LogFormat,
}
# What each command offered as plain strings before the enums: the command line must not change.
FORMATS = {
    "validate": ["text", "json"],
    "plan": ["text", "markdown", "json"],
    "apply": ["text", "markdown", "json"],
    "show": ["text", "markdown", "json"],
    "graph": ["dot", "mermaid"],
    "explain": ["text", "json"],
    "status": ["text", "markdown", "json"],
    "verify": ["text", "json"],
    "datasets": ["text", "json"],
}


def choice_params() -> list[tuple[str, click.Parameter]]:
    assert isinstance(main, click.Group)
    found = [(name, p) for name, command in main.commands.items() for p in command.params if p.name in ENUMS]
    found += [("pixel", p) for p in main.params if p.name in ENUMS]
    return found


@pytest.mark.parametrize(("where", "param"), choice_params(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_every_choice_converts_to_its_enum_member(where: str, param: click.Parameter) -> None:
    assert isinstance(param.type, click.Choice)
    enum = ENUMS[str(param.name)]
    for choice in param.type.choices:
        converted = param.type.convert(choice, param, None)
        assert type(converted) is enum and converted == choice
    default = param.type.convert(param.default, param, None)
    assert type(default) is enum


def test_the_formats_offered_are_the_ones_offered_before() -> None:
    offered = {where: list(p.type.choices) for where, p in choice_params()
               if p.name == "output_format" and isinstance(p.type, click.Choice)}
    assert offered == FORMATS


def test_observe_and_executor_choices_are_unchanged() -> None:
    offered = {str(p.name): list(p.type.choices) for _, p in choice_params()
               if p.name != "output_format" and isinstance(p.type, click.Choice)}
    assert offered == {"observe_mode": ["list", "inventory"], "executor": ["local", "dask"],
                       "log_format": ["console", "json"]}


def test_a_choice_outside_the_enum_is_one_usage_error_exit_1() -> None:
    result = CliRunner().invoke(main, ["plan", "--format", "yaml"])
    assert result.exit_code == 1
    assert "'yaml' is not one of 'text', 'markdown', 'json'" in result.output


@pytest.mark.parametrize("flags", [["--scheduler", "tcp://127.0.0.1:1"], ["--batch-actions", "7"]])
def test_a_dask_only_flag_with_the_local_executor_is_refused_not_ignored(flags: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["apply", "--specs", str(tmp_path / "none"), "--auto-approve", *flags])
    assert result.exit_code == 1
    assert f"{flags[0]} only apply with --executor dask" in result.output


def test_a_dask_only_default_from_the_environment_is_not_an_error(tmp_path: Path) -> None:
    env = {"PIXEL_DASK_SCHEDULER": "tcp://127.0.0.1:1", "PIXEL_BATCH_ACTIONS": "7"}
    result = CliRunner().invoke(main, ["apply", "--specs", str(tmp_path / "none"), "--auto-approve"], env=env)
    assert "only apply with --executor dask" not in result.output
    assert result.exit_code == 1 and "none" in result.output  # the missing specs, as without them
