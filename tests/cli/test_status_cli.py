"""`pixel status` and `--strict` wiring: flags reach the command, user errors are one message and exit 1."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import main


def test_status_on_a_missing_spec_directory_is_one_error_and_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["status", "--specs", str(tmp_path / "nope"), "--format", "json"])
    assert result.exit_code == 1
    assert "spec directory does not exist" in result.output


def test_status_and_strict_are_documented_in_help() -> None:
    runner = CliRunner()
    status = runner.invoke(main, ["status", "--help"])
    assert status.exit_code == 0 and "--format [text|markdown|json]" in status.output
    for command in ("plan", "apply"):
        helped = runner.invoke(main, [command, "--help"])
        assert "--strict" in helped.output, command
