"""Helpers shared by the spec-loading tests."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from reconciler.model import Desired
from reconciler.spec import SpecErrors, load_desired


class SpecDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, name: str, text: str) -> Path:
        file = self.path / name
        file.write_text(textwrap.dedent(text), encoding="utf-8")
        return file

    def load(self, env: Mapping[str, str] | None = None) -> Desired:
        return load_desired(self.path, env or {})

    def errors(self, env: Mapping[str, str] | None = None) -> list[str]:
        with pytest.raises(SpecErrors) as caught:
            load_desired(self.path, env or {})
        return caught.value.messages


# A sound store file most error tests add to, so each test shows only the problem it is about.
STORES = """\
stores:
  lake:
    type: s3
    bucket: pixel-data
  staging:
    type: local
    root: data
"""
