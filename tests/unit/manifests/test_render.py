"""The pure renderers' details: URLs, dates, byte stability, what the inventory leaves out."""

from __future__ import annotations

import json

from reconciler.commands.status import render_status_text
from reconciler.manifests.common import dumps, iso_from_ns, s3_url, size_mb
from reconciler.manifests.inventory import render_inventory
from reconciler.model import Desired, Entry, S3StoreSpec, TierSpec


def test_s3_urls_follow_the_seed_on_aws_and_path_style_elsewhere() -> None:
    aws = S3StoreSpec("a", "story-boards-assets", region="us-west-1")
    assert s3_url(aws, "system_actors/training_data/x/x 1.jpg") == (
        "https://story-boards-assets.s3.us-west-1.amazonaws.com/system_actors/training_data/x/x%201.jpg"
    )
    local = S3StoreSpec("a", "b-1", endpoint="http://127.0.0.1:8333/", addressing_style="path")
    assert s3_url(local, "k/v.jpg") == "http://127.0.0.1:8333/b-1/k/v.jpg"
    virtual = S3StoreSpec("a", "b-1", endpoint="https://s3.example.net", addressing_style="virtual")
    assert s3_url(virtual, "k") == "https://b-1.s3.example.net/k"


def test_dates_sizes_and_json_are_stable() -> None:
    assert iso_from_ns(1_729_176_000_123_456_789) == "2024-10-17T14:40:00.123456"
    assert size_mb(328059) == 0.31  # the seed's own example entry
    assert (
        dumps({"b": 1, "a": [1, {"d": 2, "c": 3}]})
        == b'{\n  "a": [\n    1,\n    {\n      "c": 3,\n      "d": 2\n    }\n  ],\n  "b": 1\n}\n'
    )


def test_inventory_counts_per_tier_and_category_and_skips_pixels_own_keys() -> None:
    desired = Desired(
        stores={"lake": S3StoreSpec("lake", "pixel-data")},
        mappings=(),
        tiers=(TierSpec("all", "lake", "", categories=("priority",)),),
    )
    objects = {
        "priority/a.json": Entry("priority/a.json", 10, "0" * 32),
        "edge/b.json": Entry("edge/b.json", 5, None),
        "top.json": Entry("top.json", 1, "1" * 32),
        ".pixel/lock": Entry(".pixel/lock", 99, None),
    }
    document = json.loads(render_inventory(desired, {"lake": objects}))
    assert [o["key"] for o in document["objects"]] == ["edge/b.json", "priority/a.json", "top.json"]
    assert document["tiers"]["all"]["categories"] == {
        "priority": {"object_count": 1, "total_bytes": 10},
        "edge": {"object_count": 1, "total_bytes": 5},
    }
    assert document["totals"] == {"object_count": 3, "total_bytes": 16}
    assert render_inventory(desired, {"lake": dict(reversed(list(objects.items())))}) == render_inventory(
        desired, {"lake": objects}
    )


def test_status_text_has_a_row_per_tier_and_actor() -> None:
    zero = {s: {"count": 0, "bytes": 0} for s in ("synced", "local_only", "s3_only", "out_of_sync")}
    document = {
        "tiers": {"raw": {**zero, "synced": {"count": 2, "bytes": 2048}, "objects": {"count": 2, "bytes": 2048}}},
        "actors": {"0042": {"name": "0042_x", **zero, "orphans": 1, "missing": 2}},
        "mappings": {},
        "datasets": {"organised": 1, "pending": 2, "missing": 0},
        "totals": {**zero, "orphans": 1, "missing": 2},
    }
    text = render_status_text(document)
    assert "\nraw   2 (2.0 KiB)  0 (0 B)" in text
    assert "\n0042   0042_x  0 (0 B)" in text
    assert "Datasets: 1 organised, 2 to organise, 0 missing." in text
    assert text.endswith("Total: 0 synced, 0 local_only, 0 s3_only, 0 out_of_sync; 1 orphan(s), 2 missing.\n")
