"""--format markdown|json and --compact on `pixel show`, and `pixel graph` of a saved plan."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import main
from reconciler.commands import planfile
from tests.unit.plan.fixed_plan import fixed_plan


def saved(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    planfile.dump(fixed_plan(), path)
    return path


def test_show_markdown_is_one_pr_comment(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["show", "--format", "markdown", str(saved(tmp_path))])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("### pixel plan: 12 to upload")
    assert "> [!CAUTION]" in result.stdout and "Saved plan" not in result.stdout


def test_show_json_is_the_saved_document(tmp_path: Path) -> None:
    path = saved(tmp_path)
    result = CliRunner().invoke(main, ["show", "--format", "json", str(path)])
    assert json.loads(result.stdout) == json.loads(path.read_text())


def test_show_compact_folds_the_shards(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["show", "--compact", str(saved(tmp_path))], env={"NO_COLOR": "1"})
    assert "+ 12 objects under datasets/gdrive/raw/cot/ (12.0 MiB)" in result.stdout


def test_graph_of_a_saved_plan_in_both_formats(tmp_path: Path) -> None:
    path = saved(tmp_path)
    dot = CliRunner().invoke(main, ["graph", str(path)])
    assert dot.exit_code == 0 and dot.stdout.startswith("digraph pixel_plan {")
    mermaid = CliRunner().invoke(main, ["graph", "--format", "mermaid", str(path)])
    assert mermaid.exit_code == 0 and mermaid.stdout.startswith("flowchart LR")


def test_graph_of_a_missing_plan_file_is_one_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["graph", str(tmp_path / "nope.json")])
    assert result.exit_code == 1 and "does not exist" in result.stderr
