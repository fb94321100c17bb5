"""The bench times pixel as an installed package runs: its modules' bytecode there before the first timed run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import reconciler
from bench.tools import compiled


def test_every_pixel_module_has_its_bytecode_before_pixel_is_timed() -> None:
    compiled.cache_clear()
    compiled()
    sources = sorted(Path(reconciler.__file__).parent.rglob("*.py"))
    missing = [str(s) for s in sources if not Path(importlib.util.cache_from_source(str(s))).is_file()]
    assert sources and missing == []
