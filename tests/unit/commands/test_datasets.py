"""`datasets` (what each registered dataset resolves to now) and `cat NAME` (its records as JSON lines)."""

from __future__ import annotations

import json

import pytest

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_OK
from reconciler.commands.datasets import cat, datasets
from reconciler.errors import UserError
from tests.unit.commands.conftest import World, md5

REGISTRY = """\
tiers:
  incoming: {at: "lake:incoming/"}
  processed: {at: "lake:processed/", categories: [cot]}
datasets:
  registry: disk:registry.json
  items:
    - {name: reasoning, tier: processed, category: cot, format: jsonl, source: "lake:incoming/reasoning.jsonl"}
    - {name: ghost, tier: processed, category: cot, format: json}
"""
RECORDS = b'{"q": 1}\n{"q": 2}\n{"q": 3}\n'


@pytest.fixture
def registered(world: World) -> World:
    (world.specs / "datasets.yaml").write_text(REGISTRY)
    world.lake.put("incoming/reasoning.jsonl", RECORDS)
    return world


def test_an_unorganised_dataset_resolves_to_its_source_and_says_so(registered: World) -> None:
    assert datasets(registered.specs, output_format=OutputFormat.JSON) == EXIT_OK
    rows = {row["name"]: row for row in registered.json()}
    reasoning, ghost = rows["reasoning"], rows["ghost"]
    assert (reasoning["status"], reasoning["tier"]) == ("fallback", "incoming")
    assert reasoning["keys"] == ["lake:incoming/reasoning.jsonl"] and reasoning["md5"] == md5(RECORDS)
    assert "not organised yet" in reasoning["warnings"][0]
    # Registered but nowhere: absent, never silently dropped from the listing.
    assert ghost["status"] == "absent" and ghost["keys"] == []


def test_once_organised_the_canonical_object_wins(registered: World) -> None:
    registered.lake.put("processed/cot/reasoning.jsonl", RECORDS)
    assert datasets(registered.specs) == EXIT_OK
    out, _ = registered.output()
    row = next(line for line in out.splitlines() if line.startswith("reasoning"))
    canonical = "lake:processed/cot/reasoning.jsonl"
    assert row.split() == ["reasoning", "processed", "jsonl", "27", "B", md5(RECORDS), canonical]


def test_cat_streams_the_records_and_a_limit_stops_it(registered: World) -> None:
    assert cat(registered.specs, "reasoning") == EXIT_OK
    out, err = registered.output()
    assert [json.loads(line) for line in out.splitlines()] == [{"q": 1}, {"q": 2}, {"q": 3}]
    assert "Warning: dataset reasoning" in err
    assert cat(registered.specs, "reasoning", limit=2) == EXIT_OK
    assert registered.output()[0].splitlines() == ['{"q":1}', '{"q":2}']


def test_cat_of_an_unknown_dataset_is_one_user_error(registered: World) -> None:
    with pytest.raises(UserError, match="nope"):
        cat(registered.specs, "nope")


def test_cat_writes_nan_and_infinity_as_the_source_wrote_them_not_as_null(world: World) -> None:
    (world.specs / "datasets.yaml").write_text(REGISTRY)
    source = b'{"loss": NaN, "n": null}\n{"nested": [1.5, {"x": -Infinity}], "q": null}\n{"q": 1}\n'
    world.lake.put("incoming/reasoning.jsonl", source)
    assert cat(world.specs, "reasoning") == EXIT_OK
    out, _ = world.output()
    assert out.splitlines() == ['{"loss":NaN,"n":null}', '{"nested":[1.5,{"x":-Infinity}],"q":null}', '{"q":1}']
