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
