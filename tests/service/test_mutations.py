"""Uploads and deletes end to end against SeaweedFS: the image in S3, the manifest rewritten, the statistics
consistent, and nothing outside the actor touched (the targeted apply)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from reconciler.apply.history import last_apply
from reconciler.dev.tinyjpeg import tiny_jpeg
from reconciler.dev.world_data import ACTOR_PREFIX
from reconciler.model import S3StoreSpec
from tests.service.conftest import AUTH, World

pytestmark = pytest.mark.integration

A07 = "0007_asian_25_female"
A42 = "0042_european_30_male"


def jpeg(n: int) -> bytes:
    return tiny_jpeg(40 + n, f"uploaded #{n}")


def outside(state: dict[str, Any], world: World, actor: str, actor_id: str) -> dict[str, Any]:
    """`state` without the actor's directory, S3 prefix and manifest: what a targeted apply must not touch."""
    mine = (f"data/actors/{actor}/", f"data/actor_manifests/{actor_id}_manifest.json")
    prefix = f"{world.demo.actor_bucket}/{ACTOR_PREFIX}{actor}/"
    return {
        "files": {k: v for k, v in state["files"].items() if not k.startswith(mine)},
        "objects": {k: v for k, v in state["objects"].items() if not k.startswith(prefix)},
    }


def consistent(doc: dict[str, Any], manifest: dict[str, Any]) -> None:
    """The API document, the manifest's entries and its statistics all say the same."""
    stats = manifest["statistics"]
    statuses = [e["status"] for e in manifest["training_data"]]
    assert stats["training_images_count"] == len(statuses) == doc["total_count"] == len(doc["training_images"])
    for status in ("synced", "local_only", "s3_only", "out_of_sync"):
        assert stats[f"training_{status}_count"] == statuses.count(status) == doc[f"{status}_count"]
    assert [i["filename"] for i in doc["training_images"]] == [e["filename"] for e in manifest["training_data"]]


def s3_md5(world: World, actor: str, filename: str) -> str | None:
    try:
        head = world.demo.client.head_object(Bucket=world.demo.actor_bucket, Key=f"{ACTOR_PREFIX}{actor}/{filename}")
    except world.demo.client.exceptions.ClientError:
        return None
    return str(head["Metadata"].get("md5") or head["ETag"].strip('"'))


def test_upload_lands_in_s3_rewrites_the_manifest_and_touches_nothing_else(fresh_world: World) -> None:
    world = fresh_world
    before = world.state()
    manifest_path = world.demo.manifest("0007")
    updated_before = json.loads(manifest_path.read_bytes())["training_data_updated"]
    bodies = [jpeg(1), jpeg(2)]
    response = world.http.post(
        "/api/actors/7/training-images",
        files=[("files", (f"phone-{i}.jpg", b, "image/jpeg")) for i, b in enumerate(bodies)],
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    doc = response.json()
    assert response.headers["etag"]
    new = [i for i in doc["training_images"] if i["index"] >= 8]
    assert [(i["index"], i["filename"], i["status"]) for i in new] == [
        (8, f"{A07}_8.jpg", "synced"),
        (9, f"{A07}_9.jpg", "synced"),
    ]
    for item, body in zip(new, bodies, strict=True):
        assert item["md5_hash"] == hashlib.md5(body).hexdigest()
        assert Path(item["local_path"]).read_bytes() == body
        assert s3_md5(world, A07, item["filename"]) == hashlib.md5(body).hexdigest()
    manifest = json.loads(manifest_path.read_bytes())
    consistent(doc, manifest)
    assert (doc["total_count"], doc["synced_count"]) == (10, 10)
    assert manifest["training_data_updated"] != updated_before
    assert world.http.get("/api/actors/0007/training-data").json() == doc
    after = world.state()
    assert outside(after, world, A07, "0007") == outside(before, world, A07, "0007")
    assert len(after["objects"]) == len(before["objects"]) + 2

    # The apply was pixel's own, targeted, and recorded; the next full plan has only the inventory left to rewrite.
    app = world.server.config.app
    assert isinstance(app, FastAPI)
    ws = app.state.service.workspace()
    buckets = [s for s in ws.desired.stores.values() if isinstance(s, S3StoreSpec)]
    record = last_apply(buckets)
    assert record is not None and record["targets"] == ["actors/0007"] and record["ok"] is True
    plan = json.loads(world.demo.pixel("plan", "--format", "json", "-q").out)
    assert [(a["kind"], a["mapping"]) for a in plan["actions"]] == [("write-manifest", "inventory")]


def test_upload_to_a_report_only_actor_stays_local_and_deleting_a_local_only_image_is_allowed(
    fresh_world: World,
) -> None:
    world = fresh_world
    before = world.state()
    response = world.http.post(
        "/api/actors/0042/training-images", files=[("files", ("a.jpg", jpeg(3), "image/jpeg"))], headers=AUTH
    )
    assert response.status_code == 201, response.text
    doc = response.json()
    added = doc["training_images"][-1]
    assert (added["filename"], added["status"], added["local_exists"]) == (f"{A42}_11.jpg", "local_only", True)
    assert s3_md5(world, A42, added["filename"]) is None  # authority none: nothing is uploaded
    consistent(doc, json.loads(world.demo.manifest("0042").read_bytes()))
    assert doc["local_only_count"] == 3

    # 0042_8 is local only: removing it deletes nothing in S3 (where the shared tier forbids deletes anyway).
    gone = world.http.delete(f"/api/actors/42/training-images/{A42}_8.jpg", headers=AUTH)
    assert gone.status_code == 200, gone.text
    after = gone.json()
    assert f"{A42}_8.jpg" not in [i["filename"] for i in after["training_images"]]
    assert not (world.demo.root / f"data/actors/{A42}/training_data/{A42}_8.jpg").exists()
    consistent(after, json.loads(world.demo.manifest("0042").read_bytes()))
    assert (after["total_count"], after["local_only_count"]) == (11, 2)
    assert world.state()["objects"] == before["objects"]


def test_delete_removes_the_local_file_and_the_object_where_the_specs_let_pixel_delete(pruning_world: World) -> None:
    world = pruning_world
    before = world.state()
    name = f"{A07}_3.jpg"
    assert s3_md5(world, A07, name) is not None
    response = world.http.delete(
        f"/api/actors/0007/training-images/{name}", params={"delete_from_s3": "true"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    doc = response.json()
    assert name not in [i["filename"] for i in doc["training_images"]]
    assert not (world.demo.root / f"data/actors/{A07}/training_data/{name}").exists()
    assert s3_md5(world, A07, name) is None
    manifest = json.loads(world.demo.manifest("0007").read_bytes())
    consistent(doc, manifest)
    assert (doc["total_count"], doc["synced_count"]) == (7, 7)
    after = world.state()
    assert outside(after, world, A07, "0007") == outside(before, world, A07, "0007")
    assert len(after["objects"]) == len(before["objects"]) - 1
    again = world.http.delete(
        f"/api/actors/0007/training-images/{name}", params={"delete_from_s3": "true"}, headers=AUTH
    )
    assert again.status_code == 404
