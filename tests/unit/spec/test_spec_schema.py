"""The spec JSON Schema is valid draft 2020-12 and agrees with the model it feeds."""

from __future__ import annotations

import dataclasses
from typing import Any

from jsonschema import Draft202012Validator

from reconciler.model import LocalStoreSpec, S3StoreSpec
from reconciler.schemas import SCHEMAS_DIR
from reconciler.spec import load_schema, schema_path


def test_schema_file_is_found_in_the_package() -> None:
    path = schema_path("spec.schema.json")

    assert path == SCHEMAS_DIR / "spec.schema.json"
    # Inside the package, so a wheel carries it (tests/cli/test_wheel.py installs one).
    assert path.parent.name == "schemas" and (path.parents[1] / "__init__.py").is_file()


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(load_schema("spec.schema.json"))


def _fields(cls: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - {"name"}


def test_store_schemas_cover_exactly_the_model_fields() -> None:
    defs = load_schema("spec.schema.json")["$defs"]

    assert set(defs["s3_store"]["properties"]) - {"type"} == _fields(S3StoreSpec)
    assert set(defs["local_store"]["properties"]) - {"type"} == _fields(LocalStoreSpec)


def test_schema_defaults_match_model_defaults() -> None:
    s3 = load_schema("spec.schema.json")["$defs"]["s3_store"]["properties"]
    model = {f.name: f.default for f in dataclasses.fields(S3StoreSpec)}

    for name, prop in s3.items():
        if "default" in prop:
            assert prop["default"] == model[name], name


def test_every_object_forbids_unknown_keys() -> None:
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "additionalProperties" not in node and "allOf" not in node:
                raise AssertionError(f"{where} allows unknown keys")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(load_schema("spec.schema.json"), "#")
