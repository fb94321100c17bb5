"""The registry merge's laws: pixel's fields win, everything else is kept as written, and a re-render is a no-op."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.manifests.registry import render_registry, unmanaged_parts
from reconciler.model import DatasetSpec, Desired, Entry, FindingKind, S3StoreSpec
from tests.unit.manifests.world import build

REGISTRY = "ai/data/dataset_registry.json"

DESIRED = Desired(
    stores={"lake": S3StoreSpec("lake", "pixel-data")},
    mappings=(),
    datasets=(
        DatasetSpec("alpha", "processed", "priority", "jsonl", "lake", "processed/priority/alpha.jsonl"),
        DatasetSpec("beta", "processed", "edge_cases", "json", "lake", "processed/edge_cases/beta.json"),
    ),
)
PRESENT = {"processed/priority/alpha.jsonl": Entry("processed/priority/alpha.jsonl", 7, "a" * 32)}


def lookup(store: str, key: str) -> Entry | None:
    return PRESENT.get(key)


NAMES = st.text(st.sampled_from("abz_/~"), min_size=1, max_size=4)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    extra_top=st.dictionaries(NAMES.filter(lambda n: n not in ("datasets", "statistics")), VALUES, max_size=3),
    extra_entries=st.dictionaries(NAMES.filter(lambda n: n not in ("alpha", "beta")), VALUES, max_size=3),
    extra_fields=st.dictionaries(NAMES.filter(lambda n: n != "status"), VALUES, max_size=2),
    stale=st.booleans(),
)
def test_hand_written_parts_survive_and_a_rerender_is_byte_identical(
    extra_top: dict[str, Any], extra_entries: dict[str, Any], extra_fields: dict[str, Any], stale: bool
) -> None:
    fresh = json.loads(render_registry(DESIRED, lookup))
    edited: dict[str, Any] = {**extra_top, **fresh}
    owned_fields = set(fresh["datasets"]["alpha"])
    alpha = {**{k: v for k, v in extra_fields.items() if k not in owned_fields}, **fresh["datasets"]["alpha"]}
    if stale:
        alpha["status"] = "absent"  # pixel's own field, wrong: it is corrected
    edited["datasets"] = {**extra_entries, **fresh["datasets"], "alpha": alpha}
    previous = json.dumps(edited, indent=2).encode()

    once = render_registry(DESIRED, lookup, previous)
    merged = json.loads(once)
    assert render_registry(DESIRED, lookup, once) == once
    assert list(merged) == list(edited)
    for key, value in extra_top.items():
        assert merged[key] == value
    for name, value in extra_entries.items():
        assert merged["datasets"][name] == value
    assert merged["datasets"]["alpha"]["status"] == "present"
    assert merged["datasets"]["beta"] == fresh["datasets"]["beta"]
    assert merged["statistics"] == fresh["statistics"]
    found = {pointer for pointer, _ in unmanaged_parts(DESIRED, once)}
    extra_alpha = {k for k in extra_fields if k not in owned_fields}
    assert len(found) == len(extra_top) + len(extra_entries) + len(extra_alpha)


def test_a_registry_nobody_edited_is_rendered_exactly_as_before() -> None:
    fresh = render_registry(DESIRED, lookup)
    assert fresh == (json.dumps(json.loads(fresh), indent=2, sort_keys=True) + "\n").encode()
    assert render_registry(DESIRED, lookup, fresh) == fresh
    assert unmanaged_parts(DESIRED, fresh) == []


def test_a_registry_broken_by_hand_is_left_as_written_and_reported(tmp_path: Path) -> None:
    world = build(tmp_path)
    world.apply()
    broken = world.ws.get(REGISTRY)[:-40] + b',\n  "notes": "half-typed'
    world.ws.put(REGISTRY, broken)
    world.lake.delete("datasets/gdrive/processed/cot_reasoning/reasoning.jsonl")  # the registry would change

    plan = world.plan()
    assert not [a for a in plan.actions if a.target.key == REGISTRY]
    [problem] = [f for f in plan.findings if f.kind is FindingKind.PROBLEM and f.key.endswith(REGISTRY)]
    assert "not a JSON object" in problem.message
    _, result, _ = world.apply()
    assert result.ok
    assert world.ws.get(REGISTRY) == broken
