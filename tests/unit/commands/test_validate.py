"""`validate`: one spec set or each named file's set; every problem located; exit 1 when any set is invalid."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_ERROR, EXIT_OK
from reconciler.commands.validate import validate
from reconciler.errors import UserError
from tests.unit.commands.conftest import World


def broken(directory: Path) -> Path:
    directory.mkdir()
    spec = directory / "bad.yaml"
    spec.write_text("stores:\n  s3:\n    type: s3\n    bucket: bkt\nmappings:\n  - name: m\n    from: nowhere:x\n"
                    "    to: s3:x/\n")
    return spec


def test_good_specs_are_valid_and_counted(world: World) -> None:
    assert validate(world.specs) == EXIT_OK
    out, _ = world.output()
    assert out == f"Specs in {world.specs} are valid: 2 store(s), 1 mapping(s).\n"


def test_a_bad_set_is_located_and_fails_even_beside_a_good_one(world: World, tmp_path: Path) -> None:
    bad = broken(tmp_path / "bad")
    assert validate(world.specs, (world.specs / "specs.yaml", bad)) == EXIT_ERROR
    out, err = world.output()
    # Both sets checked in one run: the good one still reported as valid, the bad one's problem located.
    assert f"Specs in {world.specs} are valid" in out
    assert "bad.yaml:7: mappings[0].from:" in err and '"nowhere"' in err
    assert err.rstrip().endswith(f"1 problem in the specs in {bad.parent}/; nothing was touched")


def test_json_names_each_set_its_validity_and_each_error(world: World, tmp_path: Path) -> None:
    bad = broken(tmp_path / "bad")
    assert validate(world.specs, (world.specs / "specs.yaml", bad), output_format=OutputFormat.JSON) == EXIT_ERROR
    document = world.json()
    assert document["valid"] is False
    good, wrong = document["spec_sets"]
    assert good["valid"] is True and good["counts"]["stores"] == 2 and good["errors"] == []
    assert wrong["valid"] is False and wrong["spec_digest"] is None
    assert [(e["line"], e["path"]) for e in wrong["errors"]] == [(7, "mappings[0].from")]


@pytest.mark.parametrize(
    ("name", "why"),
    [("notes.txt", "not a spec file"), (".hidden.yaml", "pixel skips dotfiles"), ("gone.yaml", "no such file")],
)
def test_a_file_pixel_would_never_read_is_refused_not_passed(world: World, name: str, why: str) -> None:
    path = world.specs / name
    if name != "gone.yaml":
        path.write_text("stores: {}\n")
    with pytest.raises(UserError, match=why):
        validate(world.specs, (path,))
