"""Exit codes against Terraform's conventions, over every command: 0 success, 1 every error (a usage error
too), 2 only for "changes present" under `plan --detailed-exitcode`.

A CI script reads `plan --detailed-exitcode`'s 2 as "the plan has changes, post it": a typo in a flag must
not exit 2 as well, or the job goes green with an empty PR comment.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from tests.integration.pixelenv import PIXEL, write_specs

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2

# Every subcommand, so a command added later is held to the table too.
COMMANDS = sorted(main.commands)


def invoke(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, args, env={"PIXEL_ENV_FILE": None, "NO_COLOR": "1", **(env or {})})


def test_the_table_covers_every_command() -> None:
    assert set(COMMANDS) >= {"validate", "plan", "apply", "show", "explain", "datasets", "cat", "serve", "verify"}


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_option_exits_1_on_every_command(command: str) -> None:
    result = invoke([command, "--no-such-option"])
    assert result.exit_code == EXIT_ERROR, result.output
    assert "No such option" in result.stderr


USAGE_ERRORS: dict[str, list[str]] = {
    "misspelt flag with --detailed-exitcode": ["plan", "--detailed-exitcode", "--tagret", "raw"],
    "unknown command": ["plna"],
    "unknown option before the command": ["--no-such-option", "plan"],
    "no command at all": [],
    "value out of range": ["plan", "--parallelism", "0"],
    "not a number": ["apply", "--max-delete", "many"],
    "choice not offered": ["plan", "--format", "yaml"],
    "bad duration": ["apply", "--lock-timeout", "forever"],
    "missing argument": ["show"],
    "missing argument (explain)": ["explain"],
    "option without its value": ["plan", "--specs"],
}


@pytest.mark.parametrize("args", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_a_usage_error_exits_1_never_the_changes_code(args: list[str]) -> None:
    result = invoke(args)
    assert result.exit_code == EXIT_ERROR, result.output


@pytest.mark.parametrize("args", [["--help"], ["--version"], *([c, "--help"] for c in COMMANDS)])
def test_help_and_version_exit_0(args: list[str]) -> None:
    assert invoke(args).exit_code == EXIT_OK


def test_the_console_script_exits_1_on_a_misspelt_flag(tmp_path: Path) -> None:
    """The installed `pixel` entry point, not only click's test runner."""
    proc = subprocess.run(
        [PIXEL, "plan", "--detailed-exitcode", "--tagret", "raw"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == EXIT_ERROR, proc.stderr
    assert "No such option" in proc.stderr and "--tagret" in proc.stderr


@pytest.mark.integration
def test_plan_results_follow_the_detailed_exitcode_convention(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    """Terraform's -detailed-exitcode: 0 no changes, 2 changes, 1 an error (a plan the guards refuse)."""
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    specs = write_specs(
        tmp_path / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:raw/", "prune": True}],
    )
    env = seaweed.env()

    def code(*args: str) -> int:
        result = invoke([args[0], "--specs", str(specs), *args[1:]], env)
        return int(result.exit_code)

    assert code("plan", "--detailed-exitcode") == EXIT_OK  # nothing declared, nothing there
    (root / "raw" / "a.jsonl").write_bytes(b"a\n")
    assert code("plan", "--detailed-exitcode") == EXIT_CHANGES
    assert code("plan") == EXIT_OK  # changes, but not asked for the detailed code
    assert code("plan", "--detailed-exitcode", "--tagret", "raw") == EXIT_ERROR
    assert code("apply", "--auto-approve") == EXIT_OK
    assert code("plan", "--detailed-exitcode") == EXIT_OK
    (root / "raw" / "a.jsonl").unlink()
    assert code("plan", "--detailed-exitcode", "--max-delete", "0") == EXIT_ERROR  # refused by a guard
    assert code("validate") == EXIT_OK
    (specs / "specs.yaml").write_text("stores: [\n")
    assert code("plan", "--detailed-exitcode") == EXIT_ERROR
    assert code("validate") == EXIT_ERROR
