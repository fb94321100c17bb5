"""Seed 004's files as people use them, on SeaweedFS with the demo world (issue 27): the legacy response.json and
orphan images are named for what they are. (Seeds 000 and 002: test_seed_files.py.)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.dev.world_data import ACTORS
from tests.integration.demo_world import Demo, applied, make_demo, plan_json

pytestmark = pytest.mark.integration


@pytest.fixture
def demo(tmp_path: Path, seaweed: Any, bucket: str) -> Demo:
    return make_demo(tmp_path, seaweed, bucket)


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


def manifest_plan_line(demo: Demo) -> str:
    """The plan's line for actor 13's manifest; a stray file is never worded as a manifest edited by hand."""
    shown = demo.pixel("plan")
    assert shown.code == 0, shown.out + shown.err
    assert "edited by hand" not in shown.out, shown.out
    return next(x for x in shown.out.splitlines() if f"{A13.actor_id}_manifest.json" in x)


def test_seed_004_orphaned_files_are_reported_never_called_edited_by_hand(demo: Demo) -> None:
    applied(demo)
    image, note = stray_images(demo)
    line = manifest_plan_line(demo)
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
    line = manifest_plan_line(demo)
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
