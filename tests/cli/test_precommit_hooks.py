"""The pre-commit hooks in `.pre-commit-hooks.yaml`, run as pre-commit runs them: the hook's `entry` with the
staged files its `files` pattern matches (repository-relative paths, from the repository's root)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _hooks() -> dict[str, dict[str, Any]]:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    return {hook["id"]: hook for hook in hooks}


def _run_hook(hook_id: str, repo: Path, changed: list[str]) -> subprocess.CompletedProcess[str]:
    hook = _hooks()[hook_id]
    pattern = re.compile(hook["files"])
    files = [path for path in changed if pattern.search(path)]
    entry = shlex.split(hook["entry"])
    command = [str(BIN / entry[0]), *entry[1:], *hook.get("args", []), *files]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, env={"PATH": str(BIN), "NO_COLOR": "1"})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with the demo specs in specs/ (and a YAML file outside them that is not a spec)."""
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "ci.yml").write_text("on: [push]\n")
    return tmp_path


def test_the_hooks_run_pixel_on_spec_files_only() -> None:
    hooks = _hooks()
    assert set(hooks) == {"pixel-validate", "pixel-fmt"}
    for hook in hooks.values():
        assert hook["language"] == "python" and shlex.split(hook["entry"])[0] == "pixel"
        pattern = re.compile(hook["files"])
        assert pattern.search("specs/layout.yaml") and pattern.search("specs/x.yml")
        assert not pattern.search(".github/ci.yml") and not pattern.search("specs/notes.md")


def test_validate_hook_passes_good_specs_and_names_the_broken_file(repo: Path) -> None:
    changed = ["specs/layout.yaml", ".github/ci.yml"]
    ok = _run_hook("pixel-validate", repo, changed)
    assert ok.returncode == 0, ok.stderr
    layout = repo / "specs" / "layout.yaml"
    layout.write_text(layout.read_text().replace("to: pixel-data:", "to: nowhere:", 1))
    bad = _run_hook("pixel-validate", repo, changed)
    assert bad.returncode == 1
    assert re.search(r"specs/layout\.yaml:\d+: mappings\[0\]\.to: .*\"nowhere\" is not defined", bad.stderr), bad.stderr


def test_validate_hook_checks_a_file_with_the_rest_of_its_spec_set(repo: Path) -> None:
    """datasets.yaml alone names stores and tiers other files declare: it is valid only with them."""
    ok = _run_hook("pixel-validate", repo, ["specs/datasets.yaml"])
    assert ok.returncode == 0, ok.stderr
    (repo / "specs" / "stores.yaml").unlink()  # the change removes what datasets.yaml builds on
    bad = _run_hook("pixel-validate", repo, ["specs/datasets.yaml"])
    assert bad.returncode == 1 and "is not defined" in bad.stderr


def test_fmt_hook_rewrites_a_messy_spec_and_fails_then_passes(repo: Path) -> None:
    tiers = repo / "specs" / "tiers.yaml"
    tidy = tiers.read_text()
    tiers.write_text(tidy.replace("\n  ", "\n      ").replace("\n", "   \r\n"))
    first = _run_hook("pixel-fmt", repo, ["specs/tiers.yaml"])
    assert first.returncode == 0 and first.stdout.strip() == "specs/tiers.yaml"
    assert tiers.read_text() == tidy  # pre-commit fails the commit because the file changed
    second = _run_hook("pixel-fmt", repo, ["specs/tiers.yaml"])
    assert second.returncode == 0 and second.stdout == ""
