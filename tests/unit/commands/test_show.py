"""`show FILE`: a saved plan rendered without the specs or any store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_OK
from reconciler.commands.plan import plan
from reconciler.commands.show import show
from reconciler.plan.guards import GuardLimits
from reconciler.plan.serialize import PlanFileError
from tests.unit.commands.conftest import World


def saved_plan(world: World, path: Path, **kwargs: object) -> Path:
    world.local("a.json", b"{}")
    assert plan(world.specs, detailed_exitcode=False, parallelism=2, out=path, **kwargs) == EXIT_OK  # type: ignore[arg-type]
    world.output()
    return path


def test_text_heads_the_plan_with_what_the_file_is(world: World, tmp_path: Path) -> None:
    saved = saved_plan(world, tmp_path / "p.json", targets=("raw",))
    # Without the specs show still renders it: it reads only the file.
    (world.specs / "specs.yaml").unlink()
    assert show(saved) == EXIT_OK
    out, _ = world.output()
    first, targets = out.splitlines()[:2]
    assert first.startswith(f"Saved plan {saved} (spec digest ") and first.endswith("applyable: yes)")
    assert targets == "Targets: raw"
    assert "+ datasets/raw/a.json  (upload" in out


def test_json_is_the_saved_document_with_its_limits(world: World, tmp_path: Path) -> None:
    saved = saved_plan(world, tmp_path / "p.json", limits=GuardLimits(max_delete=3, strict=True))
    assert show(saved, output_format=OutputFormat.JSON) == EXIT_OK
    document = world.json()
    assert document["guard_limits"]["max_delete"] == 3 and document["guard_limits"]["strict"] is True
    assert [a["key"] for a in document["actions"]] == ["datasets/raw/a.json"]
    assert json.loads(saved.read_text())["spec_digest"] == document["spec_digest"]


def test_a_missing_file_is_a_plan_file_error(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError, match="does not exist"):
        show(tmp_path / "none.json")
