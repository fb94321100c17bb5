"""The flags every command shares (--log-format, -q, -v, --env-file): accepted before the subcommand and
after it, the one after winning, and acted on before the command runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main


def _error_output(args: list[str]) -> str:
    result = CliRunner().invoke(main, args, env={"PIXEL_ENV_FILE": None})
    assert result.exit_code == 1
    return result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--log-format", "json", "validate"],
        ["validate", "--log-format", "json"],
        ["--log-format", "console", "validate", "--log-format", "json"],
    ],
)
def test_log_format_before_or_after_the_subcommand_reaches_the_error(args: list[str], tmp_path: Path) -> None:
    stderr = _error_output([*args, "--specs", str(tmp_path / "nope")])
    events = [json.loads(line) for line in stderr.splitlines()]
    assert events and all(e["level"] == "error" for e in events), stderr
    assert "spec directory does not exist" in stderr


def test_a_default_after_the_subcommand_does_not_undo_a_flag_before_it(tmp_path: Path) -> None:
    stderr = _error_output(["--log-format", "json", "validate", "--specs", str(tmp_path / "nope")])
    assert not stderr.startswith("Error:")
    after = ["--log-format", "console", "--specs", str(tmp_path / "nope")]
    stderr = _error_output(["--log-format", "json", "validate", *after])
    assert stderr.startswith("Error:")


def test_env_file_before_the_subcommand_is_loaded_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "s.yaml").write_text("stores:\n  data:\n    type: s3\n    bucket: ${PIXEL_TEST_SHARED_BUCKET}\n")
    dotenv = tmp_path / "a.env"
    dotenv.write_text("PIXEL_TEST_SHARED_BUCKET=pixel-data\n")
    # Set, then unset: monkeypatch then removes what the env file sets in this process when the test ends.
    monkeypatch.setenv("PIXEL_TEST_SHARED_BUCKET", "")
    monkeypatch.delenv("PIXEL_TEST_SHARED_BUCKET")
    result = CliRunner().invoke(
        main, ["--env-file", str(dotenv), "validate", "--specs", str(specs)], env={"PIXEL_ENV_FILE": None}
    )
    assert result.exit_code == 0, result.output
