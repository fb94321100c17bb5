"""The seed scripts' files as people use them, on SeaweedFS with the demo world (issue 27).

Seed 000/002's update_manifest_s3_paths.py *updates* dataset_registry.json, so what people wrote there is
kept; seed 000's s3_manifest.json is a complete inventory of the bucket. Seed 004's files: test_seed004_files.py
(a module of its own, so pytest-xdist's loadfile can run the two halves side by side).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler.manifests.common import iso_from_ns
from reconciler.spec import load_schema
from tests.integration.demo_world import Demo, applied, make_demo, plan_json

pytestmark = pytest.mark.integration


@pytest.fixture
def demo(tmp_path: Path, seaweed: Any, bucket: str) -> Demo:
    return make_demo(tmp_path, seaweed, bucket)


def registry_path(demo: Demo) -> Path:
    return demo.root / "ai" / "data" / "dataset_registry.json"


def test_seed_002_registry_update_keeps_hand_added_notes_and_entries(demo: Demo) -> None:
    applied(demo)
    path = registry_path(demo)
    document = json.loads(path.read_bytes())
    # What seed 002 did by hand: canonical notes at the top, a dataset no spec declares, a field of its own.
    edited = {"notes": "S3 canonical: s3://pixel-data/datasets/gdrive/processed/", **document}
    edited["datasets"] = {
        **document["datasets"],
        "legacy_corpus": {"s3_path": "s3://elsewhere/legacy.jsonl", "owner": "research"},
    }
    edited["datasets"]["clinical_cot"] = {**document["datasets"]["clinical_cot"], "reviewed_by": "vivi"}
    path.write_text(json.dumps(edited, indent=2) + "\n")
    # An organised dataset disappears, so the next apply must rewrite the registry, not merely leave it.
    processed = document["datasets"]["clinical_cot"]["s3_path"].split("/", 3)[3]
    demo.client.delete_object(Bucket=demo.data_bucket, Key=processed)

    plan = plan_json(demo)
    unmanaged = sorted(f["key"].split("#", 1)[1] for f in plan["findings"] if f["mapping"] == "registry")
    assert unmanaged == ["/datasets/clinical_cot/reviewed_by", "/datasets/legacy_corpus", "/notes"]
    assert all(f["kind"] == "unmanaged" for f in plan["findings"] if f["mapping"] == "registry")

    applied(demo)
    after = json.loads(path.read_bytes())
    assert list(after) == list(edited)  # order as written: notes first
    assert after["notes"] == edited["notes"]
    assert after["datasets"]["legacy_corpus"] == edited["datasets"]["legacy_corpus"]
    assert after["datasets"]["clinical_cot"]["reviewed_by"] == "vivi"
    assert after["datasets"]["clinical_cot"]["status"] == "present"  # copied again from raw, and recorded
    assert after["statistics"]["dataset_count"] == len(document["datasets"])  # only declared datasets count
    again = demo.pixel("plan", "--detailed-exitcode", "-q")
    assert again.code == 0, again.out + again.err


def test_seed_002_registry_with_hand_added_keys_is_refused_under_strict(demo: Demo) -> None:
    applied(demo)
    path = registry_path(demo)
    document = json.loads(path.read_bytes())
    path.write_text(json.dumps({**document, "notes": "by hand"}, indent=2) + "\n")
    strict = demo.pixel("plan", "--strict")
    assert strict.code == 1, strict.out + strict.err
    assert "--strict: the plan has" in strict.out
    assert "/notes" in strict.out
    assert json.loads(path.read_bytes())["notes"] == "by hand"


def inventory_path(demo: Demo) -> Path:
    return demo.root / "ai" / "training_ready" / "data" / "s3_manifest.json"


def test_seed_000_s3_manifest_is_a_complete_inventory_of_all_s3_objects(demo: Demo) -> None:
    started = iso_from_ns(time.time_ns())
    applied(demo)
    finished = iso_from_ns(time.time_ns())
    demo.client.put_object(Bucket=demo.data_bucket, Key="scratch/someone_elses.txt", Body=b"not a tier")
    demo.client.put_object(Bucket=demo.data_bucket, Key=".pixel/tmp/leftover", Body=b"pixel's own")
    applied(demo)  # the stray object changes the bucket: the inventory is rewritten to list it
    document = json.loads(inventory_path(demo).read_bytes())
    Draft202012Validator(load_schema("inventory.schema.json")).validate(document)

    listed = {(o["bucket"], o["key"]) for o in document["objects"]}
    everything = {(b, k) for b in (demo.data_bucket, demo.actor_bucket) for k in demo.keys(b)}
    assert listed == {(b, k) for b, k in everything if not k.startswith(".pixel/")}
    keys = {k for _, k in listed}
    assert any(k.startswith("final_dataset/") for k in keys)
    assert any(k.startswith("datasets/local/") for k in keys)
    outside = [o for o in document["objects"] if o["tier"] is None]
    assert {"scratch/someone_elses.txt", "final_dataset/manifest.json"} <= {o["key"] for o in outside}
    assert document["outside_tiers"]["object_count"] == len(outside)
    assert document["totals"]["object_count"] == len(listed)
    assert started <= document["generated_at"]
    assert finished <= document["generated_at"]  # written by the second apply, not carried from the first

    # Nothing changed since: the plan is empty, and an apply leaves the file (and its generated_at) alone.
    before = inventory_path(demo).read_bytes()
    again = demo.pixel("plan", "--detailed-exitcode", "-q")
    assert again.code == 0, again.out + again.err
    applied(demo)
    assert inventory_path(demo).read_bytes() == before
