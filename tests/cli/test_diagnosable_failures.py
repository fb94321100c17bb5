"""Failures a person can act on from the one line they get: where pixel looked for the specs, which AWS
profile is missing, what a 403 on a signed request means."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main


def test_running_without_specs_names_the_absolute_path_and_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["plan"], env={"PIXEL_ENV_FILE": None})
    assert result.exit_code == 1
    assert f"looked for {tmp_path / 'specs'}" in result.stderr
    assert "--specs DIR" in result.stderr
