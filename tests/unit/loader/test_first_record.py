"""What a cold load_dataset pays before its first request (issue 25: first record < 0.3 s)."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from reconciler.spec.validate import schema_problems, spec_validator


def test_validating_a_spec_does_not_check_the_shipped_schema_against_the_meta_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # check_schema cost 0.1-0.2 s of every cold spec load (a loader's first record); the schema is a file of
    # the package, checked once by tests/unit/spec/test_spec_schema.py.
    checked: list[object] = []
    monkeypatch.setattr(Draft202012Validator, "check_schema", classmethod(lambda cls, schema: checked.append(schema)))
    spec_validator.cache_clear()
    try:
        problems = list(schema_problems({"stores": {"s": {"type": "nope"}}}))
    finally:
        spec_validator.cache_clear()
    assert problems  # still validates documents
    assert checked == []
