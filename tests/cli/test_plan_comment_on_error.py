"""`pixel plan --format markdown` is what CI posts as the PR comment: when no plan can be made (invalid specs)
it still says so on stdout, with every located problem, and exits 1. An empty comment reads as "nothing to
review"."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import main

SPEC = """\
stores:
  lake:
    type: s3
    bucket: pixel-data
    endpoint: http://127.0.0.1:9
  staging:
    type: local
    root: ../local-root
mappings:
  - name: raw
    from: staging:raw
    to: nowhere:raw/
    pruen: true
"""


def test_invalid_specs_still_give_a_markdown_comment_naming_every_problem(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "layout.yaml").write_text(SPEC)
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(
        main, ["plan", "--specs", str(specs), "--format", "markdown", "-out", str(out), "--detailed-exitcode"]
    )
    assert result.exit_code == 1
    comment = result.stdout
    assert comment.startswith("### pixel plan: the specs are invalid\n")
    assert "layout.yaml:12: mappings[0].to:" in comment and 'store "nowhere" is not defined' in comment
    assert 'layout.yaml:13: mappings[0].pruen: unknown key "pruen"' in comment
    assert "2 problems in the specs" in comment
    assert comment.count("```") == 2  # one fenced block, closed
    assert not out.exists()
    assert "2 problems in the specs" in result.stderr  # stderr keeps its messages for the log


def test_a_message_with_backticks_cannot_close_the_fence(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "layout.yaml").write_text(SPEC.replace("to: nowhere:raw/", "to: '```nowhere:raw/'"))
    comment = CliRunner().invoke(main, ["plan", "--specs", str(specs), "--format", "markdown"]).stdout
    fence = comment.splitlines()[4]
    assert fence == "````text" and comment.rstrip("\n").endswith("\n````")


def test_a_missing_spec_directory_is_in_the_comment(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plan", "--specs", str(tmp_path / "nope"), "--format", "markdown"])
    assert result.exit_code == 1
    assert result.stdout.startswith("### pixel plan: the specs are invalid\n") and "nope" in result.stdout


def test_an_error_after_the_specs_loaded_is_in_the_comment(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "layout.yaml").write_text(SPEC.replace("nowhere:", "lake:").replace("    pruen: true\n", ""))
    args = ["plan", "--specs", str(specs), "--format", "markdown", "--relist-prefix", "raw/"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.stdout.startswith("### pixel plan: failed\n")
    # Whatever stopped it (no credentials here, or the misplaced flag): the comment says what stderr says.
    message = result.stderr.strip().splitlines()[-1].removeprefix("Error: ")
    assert f"```text\n{message}\n```" in result.stdout
