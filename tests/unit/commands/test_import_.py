"""`import STORE:PREFIX`: tiers inferred from what a bucket holds, written as a spec file pixel then accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.commands import EXIT_OK
from reconciler.commands.import_ import import_prefix, parse_target
from reconciler.commands.plan import plan
from reconciler.errors import UserError
from tests.unit.commands.conftest import World


def test_the_written_tiers_are_accepted_and_plan_no_changes(world: World, tmp_path: Path) -> None:
    for key in ("raw/a.json", "raw/b.json", "processed/c.jsonl"):
        world.lake.put(f"imports/{key}", b"{}")
    out = world.specs / "imported.yaml"
    assert import_prefix(world.specs, "lake:imports", specs_out=out) == EXIT_OK
    said, _ = world.output()
    assert said.startswith(f"Wrote {out}: 2 tier(s) for 3 objects under lake:imports/.")
    text = out.read_text()
    assert "at: lake:imports/raw/" in text and "at: lake:imports/processed/" in text
    assert "ownership: shared" in text  # imported tiers never let pixel delete
    # The imported file joins the specs: still valid, still nothing to do.
    assert plan(world.specs, detailed_exitcode=True, parallelism=2) == EXIT_OK


def test_an_existing_file_is_kept_unless_forced(world: World) -> None:
    world.lake.put("imports/raw/a.json", b"{}")
    out = world.specs.parent / "elsewhere.yaml"
    out.write_text("# mine\n")
    with pytest.raises(UserError, match="already exists"):
        import_prefix(world.specs, "lake:imports/", specs_out=out)
    assert out.read_text() == "# mine\n"
    assert import_prefix(world.specs, "lake:imports/", specs_out=out, force=True) == EXIT_OK
    assert "tiers:" in out.read_text()


@pytest.mark.parametrize(
    ("target", "match"),
    [("disk:raw/", "'disk' is not an S3 store"), ("lake:empty/", "holds no objects")],
)
def test_what_cannot_be_imported_writes_nothing(world: World, target: str, match: str) -> None:
    with pytest.raises(UserError, match=match):
        import_prefix(world.specs, target)
    assert sorted(p.name for p in world.specs.iterdir()) == ["specs.yaml"]


@pytest.mark.parametrize(("text", "expected"), [("s:a", ("s", "a/")), ("s:", ("s", "")), ("s:a/b/", ("s", "a/b/"))])
def test_a_target_is_a_store_and_a_folder_prefix(text: str, expected: tuple[str, str]) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["nostore", ":x/", "s:a/../b"])
def test_a_malformed_target_is_refused(text: str) -> None:
    with pytest.raises(UserError):
        parse_target(text)
