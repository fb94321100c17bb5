"""Where the JSON Schemas live: the repository's top-level `schemas/` directory.

The package is installed editable, so the schemas are read in place rather than
copied into the package, and there is one copy to keep in step with the code.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas"


def schema_path(name: str) -> Path:
    """Path of the schema file `name` (e.g. "spec.schema.json"); raises if it is missing."""
    path = SCHEMAS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"JSON Schema {name!r} not found in {SCHEMAS_DIR}; pixel must run from a source checkout (pip install -e .)"
        )
    return path


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema; cached because it is immutable for the life of the process."""
    with schema_path(name).open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema
