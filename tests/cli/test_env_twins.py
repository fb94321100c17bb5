"""Flags with environment twins (`PIXEL_SPECS`, `PIXEL_PARALLELISM`, ...), each shown in `--help`; the command
line wins over the environment; `-target` as Terraform spells it; click's shell completion."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from reconciler.cli import main

# A flag's twin for every command that takes the flag. The list is what the docs promise (docs/ci.md).
TWINS = {
    "--specs": "PIXEL_SPECS",
    "--log-format": "PIXEL_LOG_FORMAT",
    "--env-file": "PIXEL_ENV_FILE",
    "--verbose": "PIXEL_VERBOSE",
    "--quiet": "PIXEL_QUIET",
    "--parallelism": "PIXEL_PARALLELISM",
    "--lock-timeout": "PIXEL_LOCK_TIMEOUT",
    "--scheduler": "PIXEL_DASK_SCHEDULER",
    "--executor": "PIXEL_EXECUTOR",
    "--batch-actions": "PIXEL_BATCH_ACTIONS",
    "--host": "PIXEL_HOST",
    "--port": "PIXEL_PORT",
    "--max-image-bytes": "PIXEL_MAX_IMAGE_BYTES",
    "--status-ttl": "PIXEL_STATUS_TTL",
}


def _commands() -> list[str]:
    assert isinstance(main, click.Group)
    return sorted(main.commands)


@pytest.mark.parametrize("name", _commands())
def test_every_env_twin_of_a_commands_flags_is_in_its_help(name: str) -> None:
    assert isinstance(main, click.Group)
    command = main.commands[name]
    options = [param for param in command.params if isinstance(param, click.Option)]
    result = CliRunner().invoke(main, [name, "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    # The twins promised (docs/ci.md) are declared on their flags ...
    promised = {TWINS[opt] for option in options for opt in option.opts if opt in TWINS}
    assert promised, f"{name} takes none of the flags with twins"
    declared = {option.envvar for option in options if isinstance(option.envvar, str)}
    assert promised <= declared, promised - declared
    # ... and every twin a flag has, promised here or added later, is shown in the command's help.
    for envvar in declared:
        assert f"env var: {envvar}" in result.output, (name, envvar)


def _valid_specs(tmp_path: Path) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "s.yaml").write_text("stores:\n  data:\n    type: s3\n    bucket: data\n")
    return specs


def test_pixel_specs_is_read_and_the_command_line_beats_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = _valid_specs(tmp_path)
    monkeypatch.chdir(tmp_path / "specs")  # no specs/ here: only PIXEL_SPECS can make validate pass
    nowhere = str(tmp_path / "nowhere")
    runner = CliRunner()
    result = runner.invoke(main, ["validate"], env={"PIXEL_SPECS": str(specs)})
    assert result.exit_code == 0, result.output
    for args in (["validate", "--specs", nowhere], ["--specs", nowhere, "validate"]):
        result = runner.invoke(main, args, env={"PIXEL_SPECS": str(specs)})
        assert result.exit_code == 1, (args, result.output)
        assert "nowhere" in result.stderr


def test_pixel_log_format_and_quiet_are_read(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["validate", "--specs", str(tmp_path / "nope")], env={"PIXEL_LOG_FORMAT": "json"})
    assert result.exit_code == 1
    assert result.stderr.startswith("{"), result.stderr
    # Given on the command line before the subcommand, console beats the environment's json.
    result = runner.invoke(
        main, ["--log-format", "console", "validate", "--specs", str(tmp_path / "nope")],
        env={"PIXEL_LOG_FORMAT": "json"},
    )
    assert result.stderr.startswith("Error:"), result.stderr


def test_pixel_parallelism_reaches_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, int] = {}

    def fake_status(specs: Path, *, output_format: str, parallelism: int) -> int:
        seen["parallelism"] = parallelism
        return 0

    monkeypatch.setattr("reconciler.commands.status.status", fake_status)
    result = CliRunner().invoke(main, ["status"], env={"PIXEL_PARALLELISM": "7"})
    assert result.exit_code == 0, result.output
    assert seen == {"parallelism": 7}
    result = CliRunner().invoke(main, ["status", "--parallelism", "3"], env={"PIXEL_PARALLELISM": "7"})
    assert seen == {"parallelism": 3}
    # A bad value from the environment is a usage error naming the variable, never silently the default.
    result = CliRunner().invoke(main, ["status"], env={"PIXEL_PARALLELISM": "lots"})
    assert result.exit_code != 0
    assert "PIXEL_PARALLELISM" in result.output + result.stderr


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_target_as_terraform_spells_it(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, tuple[str, ...]] = {}

    def fake(specs: Path, **kwargs: object) -> int:
        targets = kwargs["targets"]
        assert isinstance(targets, tuple)
        seen["targets"] = targets
        return 0

    monkeypatch.setattr(f"reconciler.commands.{command}.{command}", fake)
    result = CliRunner().invoke(main, [command, "-target", "raw", "--target", "final_dataset", "-target=actors/42"])
    assert result.exit_code == 0, result.output
    assert seen == {"targets": ("raw", "final_dataset", "actors/42")}


def test_shell_completion_completes_subcommands_and_flags() -> None:
    runner = CliRunner()
    script = runner.invoke(main, [], env={"_PIXEL_COMPLETE": "bash_source"}, prog_name="pixel")
    assert script.exit_code == 0
    assert "_pixel_completion" in script.output
    words = runner.invoke(
        main, [], env={"_PIXEL_COMPLETE": "bash_complete", "COMP_WORDS": "pixel pl", "COMP_CWORD": "1"},
        prog_name="pixel",
    )
    assert "plain,plan" in words.output.splitlines()
    flags = runner.invoke(
        main, [], env={"_PIXEL_COMPLETE": "bash_complete", "COMP_WORDS": "pixel plan --detail", "COMP_CWORD": "2"},
        prog_name="pixel",
    )
    assert "plain,--detailed-exitcode" in flags.output.splitlines()
