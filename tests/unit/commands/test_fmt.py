"""`fmt [--check]`: spec files rewritten in the canonical layout (comments kept), or listed for CI; a file that
cannot be formatted safely is refused and left as it is, the others still done."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from reconciler.commands import EXIT_ERROR, EXIT_OK
from reconciler.commands.fmt import fmt
from reconciler.errors import UserError
from tests.unit.commands.conftest import World

MESSY = "# where the data goes\nstores:\n    disk:   {type: local, root: x}   \nmappings: []\r\n"
TIDY = "# where the data goes\nstores:\n  disk: {type: local, root: x}\nmappings: []\n"


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    directory = tmp_path / "fmt-specs"
    directory.mkdir()
    (directory / "messy.yaml").write_text(MESSY, newline="")
    (directory / "tidy.yaml").write_text(TIDY)
    (directory / "notes.txt").write_text(MESSY, newline="")  # not a spec file: never touched
    return directory


def test_check_lists_what_would_change_and_writes_nothing(world: World, specs: Path) -> None:
    assert fmt(specs, check=True) == EXIT_ERROR
    out, err = world.output()
    [listed] = out.splitlines()
    assert listed.endswith("messy.yaml")
    assert "1 spec file(s) not formatted" in err
    assert (specs / "messy.yaml").read_bytes() == MESSY.encode()


def test_fmt_rewrites_in_place_keeping_comments_and_mode(world: World, specs: Path) -> None:
    messy = specs / "messy.yaml"
    messy.chmod(0o640)
    assert fmt(specs) == EXIT_OK
    assert messy.read_text() == TIDY
    assert stat.S_IMODE(messy.stat().st_mode) == 0o640
    assert (specs / "notes.txt").read_bytes() == MESSY.encode()
    assert sorted(p.name for p in specs.iterdir()) == ["messy.yaml", "notes.txt", "tidy.yaml"]  # no temp left
    world.output()
    # Formatted once, formatted for good.
    assert fmt(specs, check=True) == EXIT_OK
    assert world.output() == ("", "")


def test_a_file_that_is_not_yaml_is_refused_and_the_rest_still_formatted(world: World, specs: Path) -> None:
    broken = specs / "broken.yaml"
    broken.write_text("stores: [unclosed\n")
    assert fmt(specs) == EXIT_ERROR
    _, err = world.output()
    assert "broken.yaml: " in err and "not YAML pixel can read" in err
    assert broken.read_text() == "stores: [unclosed\n"
    assert (specs / "messy.yaml").read_text() == TIDY


def test_a_named_file_must_be_a_spec_file(specs: Path) -> None:
    with pytest.raises(UserError, match="not a spec file"):
        fmt(specs, (specs / "notes.txt",))
