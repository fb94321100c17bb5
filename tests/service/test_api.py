"""The read side of the service, over HTTP against a real uvicorn: seed 004's shape, ETags, refresh, the views."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import pytest

from reconciler.dev.world_data import ACTOR_PREFIX, ACTORS, image
from tests.service.conftest import World

pytestmark = pytest.mark.integration

A42 = next(a for a in ACTORS if a.actor_id == "0042")
ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
IMAGE_FIELDS = {
    "index": int,
    "filename": str,
    "s3_url": str,
    "local_exists": bool,
    "local_path": str,
    "md5_hash": str,
    "size_mb": float,
    "modified_date": str,
    "status": str,
}
TOP_FIELDS = {
    "actor_id": int,
    "actor_name": str,
    "training_images": list,
    "total_count": int,
    "synced_count": int,
    "local_only_count": int,
    "s3_only_count": int,
    "out_of_sync_count": int,
}


def test_training_data_is_the_seed_shape_field_by_field_and_type_by_type(world: World) -> None:
    response = world.http.get("/api/actors/0042/training-data")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert list(doc) == list(TOP_FIELDS)  # the seed's fields, in the seed's order, nothing more
    for name, kind in TOP_FIELDS.items():
        assert type(doc[name]) is kind, name
    assert doc["actor_id"] == 42 and doc["actor_name"] == A42.name
    images = doc["training_images"]
    for item in images:
        assert list(item) == list(IMAGE_FIELDS)
        for name, kind in IMAGE_FIELDS.items():
            assert type(item[name]) is kind, (item["filename"], name)
        assert ISO_MS_Z.match(item["modified_date"]), item["modified_date"]
        assert item["status"] in ("synced", "local_only", "s3_only", "out_of_sync")
        assert os.path.isabs(item["local_path"])
        assert item["local_exists"] == os.path.exists(item["local_path"])

    # Hand-checked against the demo data (reconciler/dev/world_data.py) and the manifest the CLI wrote.
    by_index = {i["index"]: i for i in images}
    assert sorted(by_index) == list(range(11))
    assert [i["status"] for i in images] == ["synced"] * 6 + ["out_of_sync"] * 2 + ["local_only"] * 2 + ["s3_only"]
    assert (doc["total_count"], doc["synced_count"], doc["local_only_count"]) == (11, 6, 2)
    assert (doc["s3_only_count"], doc["out_of_sync_count"]) == (1, 2)
    assert doc["total_count"] == len(images)
    assert sum(doc[f"{s}_count"] for s in ("synced", "local_only", "s3_only", "out_of_sync")) == doc["total_count"]
    six = by_index[6]
    local6 = image(A42, 6, "local")
    assert six["filename"] == f"{A42.name}_6.jpg"
    assert six["md5_hash"] == hashlib.md5(local6).hexdigest()
    assert six["local_path"] == str(world.demo.root / "data/actors" / A42.name / "training_data" / six["filename"])
    assert six["s3_url"].endswith(f"/{world.demo.actor_bucket}/{ACTOR_PREFIX}{A42.name}/{six['filename']}")
    assert six["modified_date"] == "2025-10-17T17:07:06.000Z"  # BASE_MTIME_NS + 4206 s, in UTC
    assert by_index[10]["local_exists"] is False and by_index[10]["status"] == "s3_only"
    manifest = json.loads(world.demo.manifest("0042").read_bytes())
    assert [e["md5_hash"] for e in manifest["training_data"]] == [i["md5_hash"] for i in images]


def test_42_and_0042_are_the_same_actor_and_every_answer_has_an_etag(world: World) -> None:
    short = world.http.get("/api/actors/42/training-data")
    long = world.http.get("/api/actors/0042/training-data")
    padded = world.http.get("/api/actors/000042/training-data")
    assert short.status_code == long.status_code == padded.status_code == 200
    assert short.content == long.content == padded.content
    assert short.headers["etag"] == long.headers["etag"]
    for path in ("/api/actors", "/api/status", "/api/datasets", "/api/final-dataset", "/api/actors/9999/training-data"):
        response = world.http.get(path)
        assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"]), path


@pytest.mark.parametrize("path", ["/api/actors/0013/training-data", "/api/actors", "/api/datasets", "/api/status"])
def test_if_none_match_answers_304_until_the_document_changes(world: World, path: str) -> None:
    first = world.http.get(path)
    etag = first.headers["etag"]
    again = world.http.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    listed = world.http.get(path, headers={"If-None-Match": f'"nope", W/{etag}'})
    assert listed.status_code == 304
    other = world.http.get(path, headers={"If-None-Match": '"0000"'})
    assert other.status_code == 200 and other.content == first.content


def test_a_changed_manifest_changes_the_etag(world: World) -> None:
    path = world.demo.manifest("0021")
    before = world.http.get("/api/actors/21/training-data")
    original = path.read_bytes()
    try:
        manifest = json.loads(original)
        manifest["training_data"][0]["md5_hash"] = "0" * 32
        path.write_text(json.dumps(manifest))
        after = world.http.get("/api/actors/21/training-data", headers={"If-None-Match": before.headers["etag"]})
        assert after.status_code == 200
        assert after.headers["etag"] != before.headers["etag"]
        assert after.json()["training_images"][0]["md5_hash"] == "0" * 32
    finally:
        path.write_bytes(original)


def test_refresh_observes_the_actor_live_without_writing_anything(world: World) -> None:
    directory = world.demo.root / "data/actors/0013_african_40_male/training_data"
    target = directory / "0013_african_40_male_5.jpg"
    original = target.read_bytes()
    stat = target.stat()
    manifest_before = world.demo.manifest("0013").read_bytes()
    state_before = world.state()
    try:
        target.write_bytes(original[:-2] + b"\x00\xff\xd9")  # same size, other content
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime put back
        served = world.http.get("/api/actors/13/training-data").json()
        live = world.http.get("/api/actors/13/training-data", params={"refresh": "true"}).json()
        assert served["training_images"][5]["status"] == "synced"  # the manifest: as of the last apply
        assert live["training_images"][5]["status"] == "out_of_sync"
        assert live["training_images"][5]["md5_hash"] == hashlib.md5(target.read_bytes()).hexdigest()
        assert (live["synced_count"], live["out_of_sync_count"]) == (served["synced_count"] - 1, 1)
        assert world.demo.manifest("0013").read_bytes() == manifest_before  # read only: nothing rewritten
        assert world.demo.keys(world.demo.actor_bucket) == sorted(
            k.split("/", 1)[1] for k in state_before["objects"] if k.startswith(world.demo.actor_bucket + "/")
        )
    finally:
        target.write_bytes(original)
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert world.http.get("/api/actors/13/training-data?refresh=true").json() == served


def test_actors_lists_every_actor_with_its_counts_and_link(world: World) -> None:
    listed = world.http.get("/api/actors").json()["actors"]
    assert [a["actor_id"] for a in listed] == [7, 13, 21, 42]
    for summary in listed:
        doc = world.http.get(summary["training_data_url"]).json()
        assert summary["actor_name"] == doc["actor_name"] and summary["manifest"] is True
        for field in ("total_count", "synced_count", "local_only_count", "s3_only_count", "out_of_sync_count"):
            assert summary[field] == doc[field]


def test_status_is_the_pixel_status_json_document(world: World) -> None:
    served = world.http.get("/api/status").json()
    run = world.demo.pixel("status", "--format", "json", "-q")
    assert run.code == 0, run.err
    assert served == json.loads(run.out)
    assert set(served["tiers"]) == {"raw", "processed", "acquired", "actors"}
    assert set(served["actors"]) == {"0007", "0013", "0021", "0042"}


def test_datasets_say_where_each_resolves(world: World) -> None:
    body = world.http.get("/api/datasets").json()
    by_name = {d["name"]: d for d in body["datasets"]}
    assert len(by_name) == 8
    registry = body["registry"]
    assert set(registry["datasets"]) == set(by_name)
    for name, entry in by_name.items():
        assert entry["state"] == "organised"
        assert entry["resolves_to"]["via"] == "canonical"
        assert entry["resolves_to"]["uri"] == entry["canonical"] == registry["datasets"][name]["s3_path"]
        key = entry["resolves_to"]["key"]
        assert world.demo.client.head_object(Bucket=world.demo.data_bucket, Key=key)["ContentLength"] > 0


def test_final_dataset_is_the_published_manifest_with_an_etag(world: World) -> None:
    response = world.http.get("/api/final-dataset")
    assert response.status_code == 200, response.text
    published = world.demo.client.get_object(Bucket=world.demo.data_bucket, Key="final_dataset/manifest.json")
    assert response.json() == json.loads(published["Body"].read())
    assert response.json()["shards"] and all(s["key"].startswith("final_dataset/") for s in response.json()["shards"])
    again = world.http.get("/api/final-dataset", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_openapi_documents_the_routes_and_the_seed_model(world: World) -> None:
    spec: dict[str, Any] = world.http.get("/openapi.json").json()
    assert {
        "/api/actors",
        "/api/actors/{actor_id}/training-data",
        "/api/actors/{actor_id}/training-images",
        "/api/actors/{actor_id}/training-images/{filename}",
        "/api/status",
        "/api/datasets",
        "/api/final-dataset",
    } <= set(spec["paths"])
    model = spec["components"]["schemas"]["TrainingData"]
    assert list(model["properties"]) == list(TOP_FIELDS)
    assert model["properties"]["actor_id"]["type"] == "integer"
    assert world.http.get("/docs").status_code == 200


def test_the_demo_serves_for_a_moment_and_prints_a_document_fetched_over_http(world: World) -> None:
    from reconciler.dev.service_demo import run_service_demo

    lines: list[str] = []
    run_service_demo(world.demo.specs, world.demo.env, lines.append)
    text = "\n".join(lines)
    printed = text.split("/training-data\n", 1)[1].split("\nETag", 1)[0]
    assert json.loads(printed) == world.http.get("/api/actors/42/training-data").json()
    assert "asked again with If-None-Match: 304" in text and "POST without PIXEL_API_TOKEN: 403" in text
