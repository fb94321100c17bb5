"""The seed scripts' files as people use them, on SeaweedFS with the demo world (issue 27).

Seed 000/002's update_manifest_s3_paths.py *updates* dataset_registry.json, so what people wrote there is
kept; seed 000's s3_manifest.json is a complete inventory of the bucket; seed 004's legacy response.json and
orphan images are named for what they are.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler.dev.world_data import ACTORS
from reconciler.manifests.common import iso_from_ns
from reconciler.spec import load_schema
from tests.integration.demo_world import Demo, make_demo
from tests.integration.pixelenv import Run

pytestmark = pytest.mark.integration


@pytest.fixture
def demo(tmp_path: Path, seaweed: Any, bucket: str) -> Demo:
    return make_demo(tmp_path, seaweed, bucket)


def applied(demo: Demo, *args: str) -> Run:
    run = demo.pixel("apply", "--auto-approve", "-q", *args)
    assert run.code == 0, run.out + run.err
    return run


def plan_json(demo: Demo) -> dict[str, Any]:
    out = demo.root.parent / "plan.json"
    run = demo.pixel("plan", "-out", str(out), "-q")
    assert run.code == 0, run.out + run.err
    data: dict[str, Any] = json.loads(out.read_text())
    return data


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


def legacy_file(demo: Demo) -> Path:
    return demo.root / "data" / "actors" / "0042_european_30_male" / "training_data" / "response.json"


def with_actor_flags(demo: Demo, *lines: str) -> None:
    """The demo's actors layout with `lines` added to it (two-space indented, under `actors:`)."""
    path = demo.specs / "actors.yaml"
    text = path.read_text()
    path.write_text(text.replace("actors:\n", "actors:\n" + "".join(f"  {line}\n" for line in lines), 1))


def test_seed_004_legacy_response_json_is_named_as_legacy_not_as_a_generic_orphan(demo: Demo) -> None:
    plan = plan_json(demo)
    about = [f for f in plan["findings"] if f["key"].endswith("/training_data/response.json")]
    assert len(about) == 1, about
    assert "legacy response.json" in about[0]["message"]
    assert "not an image its spec expects" not in about[0]["message"]
    assert not [a for a in plan["actions"] if a["key"].endswith("response.json")]
    applied(demo)
    assert legacy_file(demo).exists()  # reported, never deleted without the flag


def test_seed_004_legacy_response_json_should_be_deleted_as_a_reviewable_pinned_action(demo: Demo) -> None:
    with_actor_flags(demo, "legacy_response_json: delete")
    legacy = legacy_file(demo)
    plan = plan_json(demo)
    deletes = [a for a in plan["actions"] if a["key"].endswith("response.json")]
    assert [(a["kind"], a["mapping"]) for a in deletes] == [("delete", "legacy")]
    assert deletes[0]["precondition"]["target_etag"]
    assert not [f for f in plan["findings"] if f["key"].endswith("response.json")]
    shown = demo.pixel("plan")
    assert "- data/actors/0042_european_30_male/training_data/response.json" in shown.out, shown.out

    # Edited after the plan was made: the saved plan's delete is refused by its precondition; the edit survives.
    saved = demo.root.parent / "plan.json"
    legacy.write_bytes(b'{"edited": "after the plan"}\n')
    stale = demo.pixel("apply", str(saved))
    assert stale.code != 0, stale.out + stale.err
    assert "412" in stale.out + stale.err or "changed" in stale.out + stale.err, stale.out + stale.err
    assert legacy.read_bytes() == b'{"edited": "after the plan"}\n'

    applied(demo)
    assert not legacy.exists()
    manifest = json.loads(demo.manifest("0042").read_bytes())
    assert manifest["accountability"]["orphans"] == []
    again = demo.pixel("plan", "--detailed-exitcode", "-q")
    assert again.code == 0, again.out + again.err


A13 = next(a for a in ACTORS if a.actor_id == "0013")


def stray_images(demo: Demo) -> tuple[Path, Path]:
    """A correctly named image left beside training_data/, and a file no layout names."""
    actor = demo.root / "data" / "actors" / A13.name
    image, note = actor / f"{A13.name}_20.jpg", actor / "training_data" / "notes.txt"
    image.write_bytes(b"\xff\xd8\xff\xe0 a picture someone saved one level up \xff\xd9")
    note.write_bytes(b"remember to re-shoot 3\n")
    return image, note


def test_seed_004_orphaned_files_are_reported_never_called_edited_by_hand(demo: Demo) -> None:
    applied(demo)
    image, note = stray_images(demo)
    shown = demo.pixel("plan")
    assert shown.code == 0, shown.out + shown.err
    assert "edited by hand" not in shown.out, shown.out
    line = next(x for x in shown.out.splitlines() if f"{A13.actor_id}_manifest.json" in x)
    assert "orphan, reported" in line, line
    plan = plan_json(demo)
    reported = {f["key"].split(":", 1)[1] for f in plan["findings"] if f["kind"] == "orphan"}
    assert {str(p.relative_to(demo.root)) for p in (image, note)} <= reported
    applied(demo)
    manifest = json.loads(demo.manifest(A13.actor_id).read_bytes())
    assert f"{A13.name}_20.jpg" not in {e["filename"] for e in manifest["training_data"]}


def test_seed_004_orphaned_files_should_be_detected_and_added_with_adopt_orphans(demo: Demo) -> None:
    with_actor_flags(demo, "adopt_orphans: true")
    applied(demo)
    image, note = stray_images(demo)
    shown = demo.pixel("plan")
    assert shown.code == 0, shown.out + shown.err
    assert "edited by hand" not in shown.out, shown.out
    line = next(x for x in shown.out.splitlines() if f"{A13.actor_id}_manifest.json" in x)
    assert f"orphan, adopted: {image.relative_to(demo.root)}" in line, line
    assert "orphan, reported" in line and "notes.txt" in line, line

    applied(demo)
    manifest = json.loads(demo.manifest(A13.actor_id).read_bytes())
    entry = next(e for e in manifest["training_data"] if e["filename"] == image.name)
    assert entry["local_path"] == str(image.relative_to(demo.root))
    assert entry["md5_hash"] == hashlib.md5(image.read_bytes()).hexdigest()
    assert entry["status"] == "local_only"
    assert manifest["accountability"]["orphans"] == [str(note.relative_to(demo.root))]
    assert manifest["statistics"]["training_images_count"] == len(manifest["training_data"])
    again = demo.pixel("plan", "--detailed-exitcode", "-q")
    assert again.code == 0, again.out + again.err
