"""Seed 004's "Deleting a file" without `delete_from_s3`, on SeaweedFS through the real uvicorn service and through
`TrainingDataManifest`: 1. the local copy goes and S3 is left alone, 2. the entry leaves the manifest's
`training_data`, 3. `training_data_updated` moves, 4. the statistics follow; and the entry stays out of every later
plan, apply, GET and status (the actor's exclusion record), until the file is added back or re-included."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.dev.world_data import ACTOR_PREFIX
from reconciler.manifests.exclusions import KEPT_IN_S3
from reconciler.training_data import TrainingDataManifest
from tests.service.conftest import AUTH, World
from tests.service.test_mutations import A07, consistent, jpeg, s3_md5

pytestmark = pytest.mark.integration

A21 = "0021_latina_35_female"  # the pruning world pulls it (authority: s3)


def _manifest(world: World, actor_id: str) -> dict[str, Any]:
    return json.loads(world.demo.manifest(actor_id).read_bytes())


def _names(document: dict[str, Any]) -> list[str]:
    return [i["filename"] for i in document.get("training_images", document.get("training_data", []))]


def _record(world: World, actor_id: str) -> Path:
    return world.demo.root / "data" / "actor_manifests" / ".pixel" / f"{actor_id}_excluded.json"


def _actor_plan(world: World, actor: str) -> tuple[dict[str, Any], int]:
    """The full plan as JSON, and the exit code of the actor's targeted plan under --detailed-exitcode."""
    full = world.demo.pixel("plan", "--format", "json", "-q")
    assert full.code == 0, full.out + full.err
    targeted = world.demo.pixel("plan", "--target", f"actors/{actor}", "--detailed-exitcode", "-q")
    return json.loads(full.out), targeted.code


def _status(world: World) -> dict[str, Any]:
    run = world.demo.pixel("status", "--format", "json")
    assert run.code == 0, run.out + run.err
    document = json.loads(run.out)
    assert isinstance(document, dict)
    return document


def _agrees(status: dict[str, Any], manifest: dict[str, Any]) -> None:
    """`pixel status`'s actor row counts what the manifest's statistics count."""
    stats = manifest["statistics"]
    row = status["actors"][manifest["character_id"]]
    for state in ("synced", "local_only", "s3_only", "out_of_sync"):
        assert row[state]["count"] == stats[f"training_{state}_count"], state
    assert sum(row[state]["count"] for state in ("synced", "local_only", "s3_only", "out_of_sync")) == (
        stats["training_images_count"]
    )


def test_deleting_a_file_removes_its_manifest_entry_and_local_copy_and_leaves_s3_alone(fresh_world: World) -> None:
    world = fresh_world
    name = f"{A07}_3.jpg"
    local = world.demo.root / f"data/actors/{A07}/training_data/{name}"
    md5 = s3_md5(world, A07, name)
    objects = world.state()["objects"]
    updated = _manifest(world, "0007")["training_data_updated"]
    assert md5 is not None and local.exists()

    response = world.http.delete(f"/api/actors/7/training-images/{name}", headers=AUTH)
    assert response.status_code == 200, response.text
    doc = response.json()
    manifest = _manifest(world, "0007")
    # 1. local copy gone, S3 left alone (the same object, the same md5)
    assert not local.exists()
    assert s3_md5(world, A07, name) == md5 and world.state()["objects"] == objects
    # 2. entry removed, 3. training_data_updated moved, 4. statistics follow
    assert name not in _names(doc) and name not in _names(manifest)
    assert manifest["training_data_updated"] != updated
    consistent(doc, manifest)
    assert (doc["total_count"], doc["synced_count"], doc["s3_only_count"]) == (7, 7, 0)
    assert "accountability" not in manifest  # neither an orphan nor missing

    # The next plan is clean for the actor: nothing re-adds, uploads, downloads or deletes it.
    plan, code = _actor_plan(world, A07)
    assert code == 0
    assert name not in json.dumps(plan["actions"]) and name not in json.dumps(plan["findings"])
    status = _status(world)
    _agrees(status, manifest)
    assert status["actors"]["0007"]["excluded"] == [name] and status["totals"]["excluded"] == 1
    text = world.demo.pixel("status")
    assert f"actor 0007: {KEPT_IN_S3}: {name}" in text.out
    page = world.http.get("/")
    assert page.status_code == 200
    row = page.text.split('<tr id="actor-0007">', 1)[1].split("</tr>", 1)[0]
    assert f'title="{KEPT_IN_S3}: {name}">1</td>' in row
    explained = world.demo.pixel("explain", f"story-boards-assets:{ACTOR_PREFIX}{A07}/{name}")
    assert KEPT_IN_S3 in explained.out and "orphan" not in explained.out and "missing" not in explained.out

    # A full apply and every later GET keep it out; S3 still holds it; nothing came back locally.
    run = world.demo.pixel("apply", "--auto-approve", "-q")
    assert run.code == 0, run.out + run.err
    assert not local.exists() and s3_md5(world, A07, name) == md5
    assert name not in _names(world.http.get("/api/actors/7/training-data").json())
    assert name not in _names(world.http.get("/api/actors/7/training-data", params={"refresh": "true"}).json())
    assert name not in _names(_manifest(world, "0007"))
    # Asked again: it is not in the manifest any more.
    again = world.http.delete(f"/api/actors/7/training-images/{name}", headers=AUTH)
    assert again.status_code == 404 and "already excluded" in again.json()["error"]


def test_remove_image_keeps_s3_where_the_specs_prune_and_never_downloads_it_again(pruning_world: World) -> None:
    """Seed 004's Python API on a pruned actor (the apply would delete an unlisted S3 object) and a pulled one
    (the apply would download it again): neither happens to an excluded image."""
    world = pruning_world
    pushed, pulled = TrainingDataManifest(7, world.demo.specs), TrainingDataManifest(21, world.demo.specs)
    name7, name21 = f"{A07}_3.jpg", f"{A21}_2.jpg"
    md5_7, md5_21 = s3_md5(world, A07, name7), s3_md5(world, A21, name21)
    local21 = world.demo.root / f"data/actors/{A21}/training_data/{name21}"
    assert md5_7 is not None and md5_21 is not None and local21.exists()

    after7 = pushed.remove_image(name7)
    after21 = pulled.remove_image(name21)
    assert name7 not in _names(after7) and name21 not in _names(after21)
    assert name7 not in [e["filename"] for e in pushed.get_all_images()]
    assert name21 not in [e["filename"] for e in pulled.get_all_images()]
    assert not local21.exists()

    run = world.demo.pixel("apply", "--auto-approve", "-q")
    assert run.code == 0, run.out + run.err
    assert s3_md5(world, A07, name7) == md5_7 and s3_md5(world, A21, name21) == md5_21
    assert not local21.exists() and not (world.demo.root / f"data/actors/{A07}/training_data/{name7}").exists()
    plan, code = _actor_plan(world, A21)
    assert code == 0 and _actor_plan(world, A07)[1] == 0
    assert not [a for a in plan["actions"] if name7 in json.dumps(a) or name21 in json.dumps(a)]
    status = _status(world)
    for actor_id in ("0007", "0021"):
        _agrees(status, _manifest(world, actor_id))


def test_adding_the_file_back_or_re_including_it_lifts_the_exclusion(fresh_world: World, tmp_path: Path) -> None:
    world = fresh_world
    manifest = TrainingDataManifest(7, world.demo.specs)
    three, four, five = f"{A07}_3.jpg", f"{A07}_4.jpg", f"{A07}_5.jpg"
    md5_4, md5_5 = s3_md5(world, A07, four), s3_md5(world, A07, five)
    for name in (three, four, five):
        manifest.remove_image(name)
    assert json.loads(_record(world, "0007").read_bytes())["excluded"].keys() == {three, four, five}

    # TrainingDataManifest.include_image: listed again as S3 holds it.
    included = manifest.include_image(five)
    assert (included["filename"], included["status"], included["md5_hash"]) == (five, "s3_only", md5_5)

    # A new image never takes an excluded name by numbering (S3 still holds that object).
    added = manifest.add_image(jpeg(1))
    assert added["filename"] == f"{A07}_8.jpg"

    # add_image of that very file name: listed again, with the bytes given (uploaded over the kept object).
    back = tmp_path / three
    back.write_bytes(jpeg(2))
    entry = manifest.add_image(back)
    assert (entry["filename"], entry["status"]) == (three, "synced")
    assert entry["md5_hash"] == hashlib.md5(jpeg(2)).hexdigest() == s3_md5(world, A07, three)

    # An explicit re-include over HTTP: the object S3 kept is listed again, as it is (S3 only).
    response = world.http.post(f"/api/actors/7/training-images/{four}/include", headers=AUTH)
    assert response.status_code == 200, response.text
    [item] = [i for i in response.json()["training_images"] if i["filename"] == four]
    assert (item["status"], item["md5_hash"]) == ("s3_only", md5_4)
    assert not _record(world, "0007").exists()  # nothing is excluded any more
    consistent(response.json(), _manifest(world, "0007"))
    again = world.http.post(f"/api/actors/7/training-images/{four}/include", headers=AUTH)
    assert again.status_code == 404
    _agrees(_status(world), _manifest(world, "0007"))


def test_a_changed_s3_object_under_an_excluded_name_is_reported_not_hidden(fresh_world: World) -> None:
    world = fresh_world
    name = f"{A07}_5.jpg"
    world.http.delete(f"/api/actors/7/training-images/{name}", headers=AUTH).raise_for_status()
    plan, code = _actor_plan(world, A07)
    assert code == 0 and not [f for f in plan["findings"] if name in f["key"]]

    key = f"{ACTOR_PREFIX}{A07}/{name}"
    world.demo.client.put_object(Bucket=world.demo.actor_bucket, Key=key, Body=jpeg(9))
    new_md5 = hashlib.md5(jpeg(9)).hexdigest()
    plan, _ = _actor_plan(world, A07)
    [finding] = [f for f in plan["findings"] if name in f["key"]]
    assert finding["kind"] == "unmanaged" and KEPT_IN_S3 in finding["message"] and new_md5 in finding["message"]
    assert name not in json.dumps(plan["actions"])  # reported, not acted on: neither listed, fetched nor deleted
    text = world.demo.pixel("plan", "-q")
    assert f"now md5 {new_md5}" in text.out
    assert world.demo.pixel("plan", "--strict", "-q").code == 1  # a tightened guard hears about it
    assert name not in _names(world.http.get("/api/actors/7/training-data", params={"refresh": "true"}).json())


def test_delete_from_s3_after_an_exclusion_deletes_it_within_the_guards(pruning_world: World) -> None:
    world = pruning_world
    name = f"{A07}_6.jpg"
    kept = world.http.delete(f"/api/actors/7/training-images/{name}", headers=AUTH)
    assert kept.status_code == 200, kept.text
    assert s3_md5(world, A07, name) is not None and _record(world, "0007").exists()

    both = world.http.delete(f"/api/actors/7/training-images/{name}", params={"delete_from_s3": "true"}, headers=AUTH)
    assert both.status_code == 200, both.text
    assert s3_md5(world, A07, name) is None
    assert not _record(world, "0007").exists()
    assert name not in _names(both.json())
    consistent(both.json(), _manifest(world, "0007"))
    _agrees(_status(world), _manifest(world, "0007"))
    assert _actor_plan(world, A07)[1] == 0


def test_an_unreadable_exclusion_record_stops_every_action_on_the_actor(fresh_world: World) -> None:
    """What the record keeps out is unknown: no plan may list, fetch or delete anything of the actor meanwhile."""
    world = fresh_world
    world.http.delete(f"/api/actors/7/training-images/{A07}_3.jpg", headers=AUTH).raise_for_status()
    record = _record(world, "0007")
    record.write_text("{ half written")
    (world.demo.root / f"data/actors/{A07}/training_data/{A07}_1.jpg").unlink()
    plan, _ = _actor_plan(world, A07)
    assert not [a for a in plan["actions"] if A07 in json.dumps(a) or "0007_manifest" in json.dumps(a)]
    assert any(f["kind"] == "problem" and "exclusion record" in f["message"] for f in plan["findings"])
    refused = world.http.delete(f"/api/actors/7/training-images/{A07}_2.jpg", headers=AUTH)
    assert refused.status_code == 409 and "exclusion record" in refused.json()["error"]
