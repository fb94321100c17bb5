"""Failures a person can act on from the one line they get: where pixel looked for the specs, which AWS
profile is missing, what a 403 on a signed request means."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


SPEC = """\
stores:
  s3: {{type: s3, bucket: {bucket}, endpoint: "{endpoint}", region: us-east-1, addressing_style: path,
        checksum: when_required}}
  disk: {{type: local, root: ../data}}
mappings:
  - {{name: raw, from: "disk:raw", to: "s3:raw/"}}
"""


def specs_for(tmp_path: Path, endpoint: str, bucket: str = "pixel-data") -> Path:
    (tmp_path / "data" / "raw").mkdir(parents=True)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "s.yaml").write_text(SPEC.format(bucket=bucket, endpoint=endpoint))
    return specs


def test_a_missing_aws_profile_is_one_line_naming_it(tmp_path: Path) -> None:
    specs = specs_for(tmp_path, "http://127.0.0.1:9")
    env = {
        "AWS_PROFILE": "nosuch",
        "AWS_ACCESS_KEY_ID": None,
        "AWS_SECRET_ACCESS_KEY": None,
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "PIXEL_ENV_FILE": None,
    }
    result = CliRunner().invoke(main, ["plan", "--specs", str(specs)], env=env)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        f'Error: store "s3": the AWS profile "nosuch" (from AWS_PROFILE) is in neither {tmp_path / "config"} nor '
        f"{tmp_path / 'credentials'}; name a profile they define, or unset it to use the default credential chain"
    )


@pytest.mark.integration
def test_a_wrong_secret_says_signature_does_not_match_and_what_to_check(
    tmp_path: Path, seaweed: Any, bucket: str
) -> None:
    specs = specs_for(tmp_path, seaweed.endpoint, bucket)
    env = {**seaweed.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret", "PIXEL_ENV_FILE": None, "NO_COLOR": "1"}
    result = CliRunner().invoke(main, ["plan", "--specs", str(specs)], env=env)
    assert result.exit_code == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, result.stderr
    assert f'bucket "{bucket}" at {seaweed.endpoint}: denied (403 SignatureDoesNotMatch)' in error[0]
    assert "AWS_SECRET_ACCESS_KEY" in error[0]
    assert "request_id" not in result.stderr and "not-the-secret" not in result.stderr

    verbose = CliRunner().invoke(main, ["plan", "-v", "--specs", str(specs)], env=env)
    assert verbose.exit_code == 1
    denied = [line for line in verbose.stderr.splitlines() if "access denied" in line]
    assert len(denied) == 1 and "code=SignatureDoesNotMatch" in denied[0] and "request_id=" in denied[0], denied
    assert "not-the-secret" not in verbose.stderr
