"""`plan`: the diff printed in the asked format, the exit code CI reads, the saved plan file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, planfile
from reconciler.commands.plan import failure_markdown, plan
from reconciler.errors import UserError
from reconciler.plan.guards import GuardLimits
from reconciler.spec import SpecError, SpecErrors
from tests.unit.commands.conftest import World, md5


def test_new_files_are_uploads_and_detailed_exitcode_says_changes(world: World) -> None:
    world.local("a.json", b"{}")
    assert plan(world.specs, detailed_exitcode=True, parallelism=2) == EXIT_CHANGES
    out, _ = world.output()
    assert "+ datasets/raw/a.json  (upload" in out
    assert "Plan: 1 to upload, 0 to update, 0 to delete." in out
    # Without the flag, changes are still a success: a plain `pixel plan` in CI must not fail on them.
    assert plan(world.specs, detailed_exitcode=False, parallelism=2) == EXIT_OK


def test_an_object_already_there_byte_for_byte_is_no_change(world: World) -> None:
    world.local("a.json", b"{}")
    world.lake.put("datasets/raw/a.json", b"{}")
    assert plan(world.specs, detailed_exitcode=True, parallelism=2) == EXIT_OK
    assert "No changes" in world.output()[0]


def test_prune_deletes_only_under_the_mapping_and_a_guard_error_exits_1(world: World) -> None:
    world.lake.put("datasets/raw/old.json", b"1")
    world.lake.put("elsewhere/keep.json", b"2")
    world.local("a.json", b"{}")
    assert plan(world.specs, detailed_exitcode=True, parallelism=2, output_format=OutputFormat.JSON) == EXIT_CHANGES
    actions = {(a["kind"], a["store"], a["key"]) for a in world.json()["actions"]}
    assert actions == {("upload", "lake", "datasets/raw/a.json"), ("delete", "lake", "datasets/raw/old.json")}

    refused = plan(world.specs, detailed_exitcode=True, parallelism=2, limits=GuardLimits(max_delete=0))
    assert refused == EXIT_ERROR
    assert "delete" in world.output()[0]


def test_out_saves_the_plan_it_printed_with_its_limits(world: World, tmp_path: Path) -> None:
    world.local("a.json", b"{}")
    saved = tmp_path / "plan.json"
    limits = GuardLimits(max_delete=7)
    assert plan(world.specs, detailed_exitcode=False, parallelism=2, out=saved, limits=limits) == EXIT_OK
    out, _ = world.output()
    assert f"Saved the plan to {saved}: apply it with `pixel apply {saved}`." in out
    loaded = planfile.load_saved(saved)
    assert loaded.limits.max_delete == 7
    [action] = loaded.plan.actions
    assert action.target.key == "datasets/raw/a.json" and action.md5 == md5(b"{}")


def test_json_stdout_stays_one_document_with_out(world: World, tmp_path: Path) -> None:
    world.local("a.json", b"{}")
    assert plan(world.specs, detailed_exitcode=False, parallelism=2, out=tmp_path / "p.json",
                output_format=OutputFormat.JSON) == EXIT_OK
    out, err = world.output()
    json.loads(out)  # the "Saved the plan" note went to stderr
    assert "Saved the plan" in err


def test_markdown_says_why_no_plan_was_made(world: World) -> None:
    (world.specs / "specs.yaml").write_text("stores: 3\n")
    with pytest.raises(UserError):
        plan(world.specs, detailed_exitcode=False, parallelism=2, output_format=OutputFormat.MARKDOWN)
    out, _ = world.output()
    assert out.startswith("### pixel plan: the specs are invalid\n")
    assert "nothing was touched" in out


def test_a_failure_comment_cannot_be_closed_early_by_backticks_in_a_message() -> None:
    problem = SpecError(Path("specs/a.yaml"), 3, "mappings[0].name", "bad name ```` here")
    exc = UserError("1 problem")
    exc.__cause__ = SpecErrors([problem])
    body = failure_markdown(exc)
    fence = "`````"  # longer than the message's longest run of backticks
    assert f"\n{fence}text\n" in body and body.endswith(f"\n{fence}\n")
