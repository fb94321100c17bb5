from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.envfile import load_env_file, parse_env
from reconciler.errors import UserError


def test_dotenv_forms() -> None:
    text = (
        "# keys from ai/.env\n"
        "export OVH_ACCESS_KEY=AK123\n"
        "OVH_SECRET_KEY = 's3cr#t'  # a comment\n"
        'QUOTED="line\\nnext \\"q\\""\n'
        "PLAIN=value # trailing comment\n"
        "EMPTY=\n"
        "\n"
    )
    assert parse_env(text) == {
        "OVH_ACCESS_KEY": "AK123",
        "OVH_SECRET_KEY": "s3cr#t",
        "QUOTED": 'line\nnext "q"',
        "PLAIN": "value",
        "EMPTY": "",
    }


def test_bad_lines_name_file_and_line_never_the_value() -> None:
    with pytest.raises(UserError, match=r"a.env:2: expected KEY=value") as err:
        parse_env("OK=1\nthis is not an assignment with-secret\n", source="a.env")
    assert "with-secret" not in str(err.value)
    with pytest.raises(UserError, match="no closing"):
        parse_env("K='unterminated secret\n", source="a.env")


def test_set_variables_win_and_only_names_are_returned(tmp_path: Path) -> None:
    file = tmp_path / ".env"
    file.write_text("A=from-file\nB=from-file\n")
    env = {"A": "already"}
    assert load_env_file(file, env) == ["B"]
    assert env == {"A": "already", "B": "from-file"}
    with pytest.raises(UserError, match="cannot read the env file"):
        load_env_file(tmp_path / "missing.env", env)


def test_every_command_loads_the_env_file_before_reading_the_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from click.testing import CliRunner

    from reconciler.cli import main

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "s.yaml").write_text("stores:\n  data:\n    type: s3\n    bucket: ${PIXEL_TEST_BUCKET_NAME}\n")
    dotenv = tmp_path / "ai.env"
    dotenv.write_text("PIXEL_TEST_BUCKET_NAME=pixel-data\n")
    monkeypatch.delenv("PIXEL_TEST_BUCKET_NAME", raising=False)  # restored (unset) after the test
    runner = CliRunner()
    without = runner.invoke(main, ["validate", "--specs", str(specs)], env={"PIXEL_ENV_FILE": None})
    assert without.exit_code == 1 and "PIXEL_TEST_BUCKET_NAME" in without.output
    flag = runner.invoke(main, ["validate", "--specs", str(specs), "--env-file", str(dotenv)])
    assert flag.exit_code == 0, flag.output
    os.environ.pop("PIXEL_TEST_BUCKET_NAME")  # the env file set it in this process
    env_var = runner.invoke(main, ["validate", "--specs", str(specs)], env={"PIXEL_ENV_FILE": str(dotenv)})
    assert env_var.exit_code == 0, env_var.output
