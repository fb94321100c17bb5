"""JSON-Schema validation of one spec document, with errors phrased for people.

jsonschema's own messages print Python reprs of whole sub-documents; we turn each
error into `expected X, got Y` at the exact YAML path of the offending key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from reconciler.schemas import load_schema
from reconciler.spec.errors import YamlPath

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

SPEC_SCHEMA = "spec.schema.json"

_TYPE_NAMES = {
    "object": "mapping",
    "array": "list",
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}
_MAX_SHOWN = 80


@cache
def spec_validator() -> Draft202012Validator:
    # Imported here: specs known valid (spec/validcache.py) never need it, and it costs 0.1 s.
    from jsonschema import Draft202012Validator

    # The schema is not checked against the meta-schema here (0.1-0.2 s of a cold load_dataset's first record):
    # it ships with the code, and tests/unit/spec/test_spec_schema.py checks it once.
    return Draft202012Validator(load_schema(SPEC_SCHEMA))


def schema_problems(data: object) -> Iterator[tuple[YamlPath, str]]:
    """Every schema violation in `data` as (path, message)."""
    for error in spec_validator().iter_errors(data):
        yield from _describe(error)


# _TYPE_NAMES's words for the Python types a YAML document loads as; bool before int, which it subclasses.
_LOADED_NAMES: tuple[tuple[type, str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (dict, "mapping"),
    (list, "list"),
)


def type_name(value: object) -> str:
    return next((name for kind, name in _LOADED_NAMES if isinstance(value, kind)), type(value).__name__)


def show(value: object) -> str:
    """A value as JSON, shortened: messages quote what the user wrote, not whole subtrees."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def got(value: object) -> str:
    """`string "yes"`, `integer 3`, `null`, `mapping`: the type, and the value when it is short."""
    kind = type_name(value)
    if value is None or isinstance(value, dict | list):
        return kind
    return f"{kind} {show(value)}"


def _alternatives(options: list[Any]) -> str:
    shown = [show(option) for option in options]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _describe(error: ValidationError) -> Iterator[tuple[YamlPath, str]]:
    path: YamlPath = tuple(error.absolute_path)
    keyword = error.validator
    value: Any = error.validator_value
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}

    if "propertyNames" in error.schema_path:
        # The instance is the offending key itself; point at the key, not its parent.
        expected = schema.get("x-expected", "a valid name")
        yield (*path, str(instance)), f"invalid name {show(instance)} (expected {expected})"
    elif keyword == "additionalProperties" and isinstance(instance, dict):
        known = schema.get("properties", {})
        patterns = [re.compile(pattern) for pattern in schema.get("patternProperties", {})]
        allowed = ", ".join(sorted(known))
        for key in instance:
            if key not in known and not any(pattern.search(key) for pattern in patterns):
                yield (*path, key), f"unknown key {show(key)} (expected one of: {allowed})"
    elif keyword == "required" and isinstance(instance, dict):
        for key in value:
            if key not in instance:
                yield path, f"missing required key {show(key)}"
    elif keyword == "type":
        types = [value] if isinstance(value, str) else list(value)
        expected = " or ".join(_TYPE_NAMES.get(name, name) for name in types)
        yield path, f"expected {expected}, got {got(instance)}"
    elif keyword == "enum":
        yield path, f"expected {_alternatives(list(value))}, got {got(instance)}"
    elif keyword == "const":
        yield path, f"expected {show(value)}, got {got(instance)}"
    elif "x-expected" in schema:
        # pattern, minLength, maxLength... on the same value all say the same thing this way,
        # and the duplicates collapse.
        yield path, f"expected {schema['x-expected']}, got {got(instance)}"
    elif keyword == "pattern":
        yield path, f"expected a string matching {show(value)}, got {got(instance)}"
    elif keyword == "minLength":
        yield path, f"expected at least {value} characters, got {got(instance)}"
    elif keyword == "maxLength":
        yield path, f"expected at most {value} characters, got {got(instance)}"
    else:
        yield path, error.message
