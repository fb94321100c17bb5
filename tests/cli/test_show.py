"""`pixel show FILE`: renders a saved plan without specs or stores."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import main
from reconciler.commands import planfile
from tests.unit.plan.test_serialize import rich_plan


def test_show_renders_text_and_the_same_json(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    planfile.dump(rich_plan(), path)
    text = CliRunner().invoke(main, ["show", str(path)], env={"NO_COLOR": "1"})
    assert text.exit_code == 0, text.output
    assert "applyable: no (it was saved with errors)" in text.stdout
    assert "+ raw/a.jsonl  (upload" in text.stdout and "- raw/old.jsonl" in text.stdout
    assert "mapping 'raw' would delete too much" in text.stdout
    as_json = CliRunner().invoke(main, ["show", "--format", "json", str(path)])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == json.loads(path.read_text())


def test_show_refuses_a_file_that_is_not_a_plan(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"format_version": 2, "actions": []}))
    result = CliRunner().invoke(main, ["show", str(path)])
    assert result.exit_code == 1
    assert "not a valid pixel plan" in result.stderr and "Traceback" not in result.output
