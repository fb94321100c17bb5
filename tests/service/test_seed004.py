"""Seed 004's behaviours the service owes beyond the document's shape, each against SeaweedFS: `get_training_data`
auto-initialises a missing manifest; `delete_training_image` deletes "from the manifest and optionally S3"."""

from __future__ import annotations

import hashlib
import json

import pytest

from reconciler.training_data import TrainingDataError, TrainingDataManifest, TrainingDataSync
from tests.service.conftest import AUTH, World
from tests.service.test_mutations import A07, consistent, jpeg, outside, s3_md5

pytestmark = pytest.mark.integration


def test_get_training_data_auto_initializes_a_missing_manifest(fresh_world: World) -> None:
    world = fresh_world
    path = world.demo.manifest("0007")
    applied = path.read_bytes()
    path.unlink()
    before = world.state()
    response = world.http.get("/api/actors/7/training-data")
    assert response.status_code == 200, response.text
    doc = response.json()
    assert path.exists(), "the manifest was not written"
    assert path.read_bytes() == applied  # the bytes the targeted apply wrote before, regenerated from the stores
    consistent(doc, json.loads(path.read_bytes()))
    assert doc["total_count"] == 8 and doc["synced_count"] == 8
    # Only the manifest was written: no image moved, no object touched.
    after = world.state()
    assert after["objects"] == before["objects"]
    assert outside(after, world, A07, "0007") == outside(before, world, A07, "0007")
    assert set(after["files"]) - set(before["files"]) == {"data/actor_manifests/0007_manifest.json"}
    # From then on it is the manifest on disk that is served.
    assert world.http.get("/api/actors/0007/training-data").json() == doc
    plan = json.loads(world.demo.pixel("plan", "--format", "json", "-q").out)
    assert "0007" not in json.dumps([a for a in plan["actions"] if a["mapping"] != "inventory"])


def test_delete_training_image_from_s3_too_stays_within_the_delete_guards(fresh_world: World) -> None:
    """The demo's actor tier is shared: `delete_from_s3=true` is refused and nothing at all is deleted."""
    world = fresh_world
    before = world.state()
    response = world.http.delete(
        f"/api/actors/7/training-images/{A07}_3.jpg", params={"delete_from_s3": "true"}, headers=AUTH
    )
    assert response.status_code == 409, response.text
    assert "nothing was deleted" in response.json()["error"]
    assert world.state() == before


def test_seed_004_call_sequence_through_the_python_api_and_over_http(fresh_world: World) -> None:
    """Seed 004's mutation rules in its own names (auto-initialise, add, modify, delete, sync, save), each
    checked against the stores and against what the HTTP API answers for the same actor."""
    world = fresh_world
    specs = world.demo.specs
    path = world.demo.manifest("0007")
    path.unlink()
    sync = TrainingDataSync(specs)
    manifest = TrainingDataManifest(7, specs)
    assert manifest.get_all_images() == []

    # auto_initialize_manifest: scan the stores, create the manifest; nothing moved.
    objects = world.state()["objects"]
    initialized = sync.auto_initialize_manifest(7)
    assert (initialized["total_count"], initialized["synced_count"]) == (8, 8)
    assert world.http.get("/api/actors/7/training-data").json() == initialized
    assert world.state()["objects"] == objects
    assert [e["status"] for e in manifest.get_all_images()] == ["synced"] * 8

    # Adding a file: uploaded, hashed, in the manifest as synced.
    added = manifest.add_image(jpeg(1))
    assert (added["filename"], added["status"]) == (f"{A07}_8.jpg", "synced")
    assert added["md5_hash"] == hashlib.md5(jpeg(1)).hexdigest() == s3_md5(world, A07, f"{A07}_8.jpg")
    generation = manifest.add_generation([jpeg(2), jpeg(3)])
    assert [e["filename"] for e in generation] == [f"{A07}_9.jpg", f"{A07}_10.jpg"]
    assert all(s3_md5(world, A07, e["filename"]) == e["md5_hash"] for e in generation)

    # Modifying a file: the hash recalculated, S3 updated.
    updated = manifest.update_image(f"{A07}_8.jpg", jpeg(4))
    assert updated["md5_hash"] == hashlib.md5(jpeg(4)).hexdigest() == s3_md5(world, A07, f"{A07}_8.jpg")
    assert updated["status"] == "synced"

    # Deleting a file: out of the manifest with its local copy, S3 kept; S3 only when asked (and allowed: the
    # demo's tier is shared, so refused).
    after_remove = manifest.remove_image(f"{A07}_9.jpg")
    assert f"{A07}_9.jpg" not in [i["filename"] for i in after_remove["training_images"]]
    assert s3_md5(world, A07, f"{A07}_9.jpg") == hashlib.md5(jpeg(2)).hexdigest()
    with pytest.raises(TrainingDataError) as refused:
        manifest.remove_image(f"{A07}_10.jpg", delete_from_s3=True)
    assert refused.value.status == 409 and "nothing was deleted" in str(refused.value)
    assert (world.demo.root / f"data/actors/{A07}/training_data/{A07}_10.jpg").exists()

    # The same over HTTP: an upload there is what the Python side reads next.
    posted = world.http.post(
        "/api/actors/7/training-images", files=[("files", ("x.jpg", jpeg(5), "image/jpeg"))], headers=AUTH
    )
    assert posted.status_code == 201, posted.text
    assert manifest.get_all_images()[-1]["md5_hash"] == hashlib.md5(jpeg(5)).hexdigest()

    # sync_actor_training_data and save: nothing left to do, the same document as the API's, bytes unchanged.
    written = path.read_bytes()
    synced = sync.sync_actor_training_data(7)
    assert synced == world.http.get("/api/actors/7/training-data").json() == posted.json()
    assert manifest.save() == path and path.read_bytes() == written
    consistent(synced, json.loads(written))
    assert (synced["total_count"], synced["synced_count"], synced["s3_only_count"]) == (11, 11, 0)

