"""The inventory's clock and its own copy, on in-memory stores with an injected apply clock."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.manifests.common import iso_from_ns
from tests.unit.manifests.world import build, md5

INVENTORY = "ai/training_ready/data/s3_manifest.json"
SELF_UPLOAD = """\
mappings:
  - name: training_ready
    from: ws:ai/training_ready/data
    to: lake:datasets/local/ai/training_ready/
    authority: local
"""


def test_generated_at_is_the_apply_clock_and_moves_only_when_the_inventory_changes(tmp_path: Path) -> None:
    world = build(tmp_path)
    world.clock_ns = 1_800_000_000_000_000_000
    _, result, _ = world.apply()
    assert result.ok
    first = world.ws.get(INVENTORY)
    assert json.loads(first)["generated_at"] == iso_from_ns(1_800_000_000_000_000_000)

    world.clock_ns += 10**9
    assert not world.plan().actions  # only the clock moved: nothing to rewrite
    world.apply()
    assert world.ws.get(INVENTORY) == first

    world.lake.put("final_dataset/train/000.jsonl", b"{}\n")  # outside every tier, still inventoried
    _, result, _ = world.apply()
    assert result.ok
    document = json.loads(world.ws.get(INVENTORY))
    assert document["generated_at"] == iso_from_ns(world.clock_ns)
    assert {
        "bucket": "pixel-data",
        "key": "final_dataset/train/000.jsonl",
        "tier": None,
        "category": None,
        "size_bytes": 3,
        "md5": md5(b"{}\n"),
    } in document["objects"]


def test_an_inventory_uploaded_into_the_bucket_it_lists_still_converges(tmp_path: Path) -> None:
    world = build(tmp_path, SELF_UPLOAD)
    for _ in range(3):
        _, result, _ = world.apply()
        assert result.ok
        world.clock_ns += 10**9
    assert not world.plan().actions
    document = json.loads(world.ws.get(INVENTORY))
    keys = {o["key"] for o in document["objects"]}
    assert "datasets/local/ai/training_ready/s3_manifest.json" not in keys
    assert world.lake.get("datasets/local/ai/training_ready/s3_manifest.json") == world.ws.get(INVENTORY)
