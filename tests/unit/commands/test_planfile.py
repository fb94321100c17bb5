"""Saved plan files: written whole or not at all, read back as the plan and the limits they record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.commands import planfile
from reconciler.model import Plan
from reconciler.plan.guards import GuardLimits
from reconciler.plan.serialize import PlanFileError


def test_a_plan_and_its_limits_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    limits = GuardLimits(max_delete=5, max_superseded=2, allow_mass_delete=True, strict=True)
    planfile.dump(Plan((), (), spec_digest="d" * 64), path, limits=limits)
    saved = planfile.load_saved(path)
    assert saved.plan.spec_digest == "d" * 64 and saved.limits == limits
    assert planfile.load(path).spec_digest == "d" * 64


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plan.json"
    planfile.dump(Plan((), (), spec_digest="a" * 64), path)
    before = path.read_bytes()

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        planfile.dump(Plan((), (), spec_digest="b" * 64), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_an_unwritable_directory_is_a_plan_file_error(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError, match="cannot write the plan file"):
        planfile.dump(Plan((), (), spec_digest="a" * 64), tmp_path / "missing-dir" / "plan.json")


@pytest.mark.parametrize(("content", "match"), [(None, "does not exist"), (b"\xff\xfe", "cannot be read")])
def test_an_unreadable_file_is_a_plan_file_error(tmp_path: Path, content: bytes | None, match: str) -> None:
    path = tmp_path / "plan.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PlanFileError, match=match):
        planfile.load_saved(path)
