"""Where the JSON Schemas live: beside this module, shipped in the wheel as package data.

One copy, read in place both from a checkout (editable install) and from an installed wheel: a CI job
that runs `pip install git+URL@tag` validates its specs against the schemas of that very version.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMAS_DIR = Path(__file__).resolve().parent


def schema_path(name: str) -> Path:
    """Path of the schema file `name` (e.g. "spec.schema.json"); raises if it is missing."""
    path = SCHEMAS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"JSON Schema {name!r} not found in {SCHEMAS_DIR}: this pixel installation is incomplete "
            "(reinstall it: pip install --force-reinstall pixel-reconciler)"
        )
    return path


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema; cached because it is immutable for the life of the process."""
    with schema_path(name).open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema
