"""YAML to data with positions: YAML 1.2 scalars, merge keys, and where every key sits."""

from __future__ import annotations

import math

import pytest

from reconciler.spec.yamlnodes import YamlSyntaxError, parse_yaml


def test_positions_of_keys_and_items() -> None:
    parsed = parse_yaml("# comment\nstores:\n  lake:\n    type: s3\nmappings:\n  - name: a\n  -\n    name: b\n")

    assert parsed.positions[("stores",)] == (2, 1)
    assert parsed.positions[("stores", "lake", "type")] == (4, 5)
    assert parsed.positions[("mappings", 0)] == (6, 5)
    assert parsed.positions[("mappings", 1, "name")] == (8, 5)
    assert parsed.problems == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),
        ("on", "on"),
        ("No", "No"),
        ("true", True),
        ("FALSE", False),
        ("~", None),
        ("", None),
        ("null", None),
        ("12", 12),
        ("-3", -3),
        ("010", 10),
        ("0o10", 8),
        ("0x1f", 31),
        ("12:30", "12:30"),
        ("1_000", "1_000"),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("2024-01-01", "2024-01-01"),
        ("'true'", "true"),
        ("!!str 12", "12"),
    ],
)
def test_core_schema_scalars(text: str, value: object) -> None:
    data = parse_yaml(f"v: {text}\n").data

    assert data == {"v": value}
    assert isinstance(data, dict)
    assert type(data["v"]) is type(value)


def test_special_floats() -> None:
    data = parse_yaml("a: .inf\nb: -.Inf\nc: .nan\n").data
    assert isinstance(data, dict)

    assert data["a"] == math.inf and data["b"] == -math.inf and math.isnan(data["c"])


def test_keys_keep_their_text() -> None:
    assert parse_yaml("on: 1\n2024: 2\nnull: 3\n").data == {"on": 1, "2024": 2, "null": 3}


def test_empty_document_is_an_empty_mapping() -> None:
    assert parse_yaml("# nothing yet\n").data == {}


def test_duplicate_keys_are_problems_and_the_first_wins() -> None:
    parsed = parse_yaml("a: 1\nb: 2\na: 3\n")

    assert parsed.data == {"a": 1, "b": 2}
    assert [(p.path, p.position, p.message) for p in parsed.problems] == [
        (("a",), (3, 1), 'duplicate key "a" (first at line 1)')
    ]


def test_merge_keys_with_overrides() -> None:
    parsed = parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")

    assert parsed.data == {"base": {"x": 1, "y": 2}, "other": {"x": 1, "y": 3}}
    assert parsed.positions[("other", "y")] == (4, 3)
    assert parsed.problems == []


def test_bad_merge_value() -> None:
    parsed = parse_yaml("a:\n  <<: 5\n")

    assert [p.message for p in parsed.problems] == ['a "<<" merge needs a mapping or a list of mappings']


def test_complex_key_is_a_problem() -> None:
    parsed = parse_yaml("? [a, b]\n: 1\n")

    assert [(p.position, p.message) for p in parsed.problems] == [((1, 3), "mapping keys must be plain strings")]


def test_syntax_error_has_a_line() -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml("a: 1\nb: [\n")

    assert caught.value.line == 3


def test_two_documents_are_refused() -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml("a: 1\n---\nb: 2\n")

    assert (caught.value.line, caught.value.message) == (
        2,
        "invalid YAML: but found another document (expected a single document in the stream at line 1)",
    )


def test_non_printable_character() -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml("a: 1\nb: \x07\n")

    assert caught.value.line == 2
    assert caught.value.message == "invalid YAML: special characters are not allowed (character U+0007)"
