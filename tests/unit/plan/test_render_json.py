"""--format json: the versioned document of reconciler/plan/serialize.py, golden and valid against its schema."""

from __future__ import annotations

import json

import jsonschema

from reconciler.choices import OutputFormat
from reconciler.commands.output import render_plan
from reconciler.plan import serialize
from reconciler.schemas import load_schema
from tests.unit.plan.fixed_plan import check_golden, fixed_desired, fixed_plan


def _stable(text: str) -> str:
    # pixel_version changes with every release; everything else is fixed by the plan.
    data = json.loads(text)
    data.pop("pixel_version")
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def test_json_matches_golden_and_its_schema() -> None:
    text = render_plan(fixed_plan(), fixed_desired(), OutputFormat.JSON)
    data = json.loads(text)
    jsonschema.Draft202012Validator(load_schema("plan.schema.json")).validate(data)
    assert data["format_version"] == 2
    assert data["summary"]["upload"] == {"count": 12, "bytes": sum(1_048_576 + i for i in range(12))}
    assert ["move:pixel-data:datasets/gdrive/processed/priority/mix.jsonl",
            "delete:pixel-data:datasets/acquired/mix.jsonl"] in data["edges"]
    check_golden("plan.json", _stable(text))


def test_json_round_trips_to_the_same_plan() -> None:
    assert serialize.loads(render_plan(fixed_plan(), None, OutputFormat.JSON)) == fixed_plan()
