"""Fixtures for spec-loading tests: a `specs/` directory under tmp_path, which is the cwd
so that error messages show `specs/<file>` exactly as a user running pixel would see them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.spec.spec_testing import SpecDir


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SpecDir:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "specs"
    path.mkdir()
    return SpecDir(path)
