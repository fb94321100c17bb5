"""`pixel plan/apply --target NAME` on the demo world: only the target is observed, planned and applied; the
guards and the lock still hold; a saved targeted plan records its targets and refuses actions outside them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply.lock import LockInfo
from reconciler.dev.seaweed import unique_bucket_name
from reconciler.dev.tinyjpeg import tiny_jpeg
from reconciler.dev.world_data import ACTOR_PREFIX
from reconciler.plan.serialize import guard_digest
from tests.integration.demo_world import Demo, make_demo

pytestmark = pytest.mark.integration

A07 = "0007_asian_25_female"


def _changed(tmp_path: Path, seaweed: Any, bucket: str) -> Demo:
    """The demo world applied once, then two local changes in two parts: a new image of 0007, a new raw file."""
    demo = make_demo(tmp_path, seaweed, bucket)
    run = demo.pixel("apply", "--auto-approve", "-q")
    assert run.code == 0, run.out + run.err
    (demo.root / f"data/actors/{A07}/training_data/{A07}_8.jpg").write_bytes(tiny_jpeg(9, "new"))
    (demo.root / "gdrive/raw/new_notes.jsonl").write_text('{"n": 1}\n')
    return demo


@pytest.fixture
def changed(tmp_path: Path, seaweed: Any, bucket: str) -> Demo:
    return _changed(tmp_path, seaweed, bucket)


@pytest.fixture(scope="module")
def changed_once(tmp_path_factory: pytest.TempPathFactory, seaweed: Any) -> Iterator[Demo]:
    """`changed`, built once for the tests that only plan or are refused (each asserts nothing was touched)."""
    bucket = seaweed.create_bucket(unique_bucket_name("targets"))
    demo = _changed(tmp_path_factory.mktemp("targets"), seaweed, bucket)
    yield demo
    for name in (demo.actor_bucket, bucket):
        seaweed.delete_bucket(name)


def plan_json(demo: Demo, *args: str) -> dict[str, Any]:
    run = demo.pixel("plan", "--format", "json", "-q", *args)
    assert run.code == 0, run.err
    return json.loads(run.out)


def keys_of(plan: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((a["kind"], a["mapping"], a["key"]) for a in plan["actions"])


def test_a_target_narrows_the_plan_to_its_part(changed_once: Demo) -> None:
    everything = keys_of(plan_json(changed_once))
    assert ("upload", "raw", "datasets/gdrive/raw/new_notes.jsonl") in everything
    assert ("upload", f"actors/{A07}", f"{ACTOR_PREFIX}{A07}/{A07}_8.jpg") in everything
    for name in ("actors/7", "actors/0007", f"actors/{A07}"):
        actor = plan_json(changed_once, "--target", name)
        assert actor["targets"] == [name]
        assert keys_of(actor) == [
            ("upload", f"actors/{A07}", f"{ACTOR_PREFIX}{A07}/{A07}_8.jpg"),
            ("write-manifest", f"actors/{A07}", "data/actor_manifests/0007_manifest.json"),
        ]
    raw = plan_json(changed_once, "--target", "raw")
    assert keys_of(raw) == [("upload", "raw", "datasets/gdrive/raw/new_notes.jsonl")]
    both = plan_json(changed_once, "--target", "raw", "--target", "actors/7")
    assert both["targets"] == ["raw", "actors/7"] and len(both["actions"]) == 3
    text = changed_once.pixel("plan", "-q", "--target", "raw")
    assert "Targeted plan: only raw (--target)" in text.out


def test_targeted_apply_touches_only_its_target_and_a_saved_plan_records_it(changed: Demo, tmp_path: Path) -> None:
    before = changed.keys(changed.actor_bucket), changed.keys(changed.data_bucket)
    manifests = {p.name: p.read_bytes() for p in (changed.root / "data/actor_manifests").iterdir()}
    registry = (changed.root / "ai/data/dataset_registry.json").read_bytes()
    saved = tmp_path / "raw.plan.json"
    assert changed.pixel("plan", "-q", "--target", "raw", "-out", str(saved)).code == 0
    assert json.loads(saved.read_text())["targets"] == ["raw"]
    shown = changed.pixel("show", str(saved))
    assert shown.code == 0 and "Targets: raw" in shown.out

    applied = changed.pixel("apply", "-q", str(saved))
    assert applied.code == 0, applied.out + applied.err
    assert changed.keys(changed.actor_bucket) == before[0]  # 0007's new image stays local: not the target
    assert changed.keys(changed.data_bucket) == sorted([*before[1], "datasets/gdrive/raw/new_notes.jsonl"])
    assert {p.name: p.read_bytes() for p in (changed.root / "data/actor_manifests").iterdir()} == manifests
    assert (changed.root / "ai/data/dataset_registry.json").read_bytes() == registry

    actor = changed.pixel("apply", "-q", "--auto-approve", "--target", "actors/0007")
    assert actor.code == 0, actor.out + actor.err
    assert changed.keys(changed.actor_bucket) == sorted([*before[0], f"{ACTOR_PREFIX}{A07}/{A07}_8.jpg"])
    for name, content in manifests.items():
        changed_once = (changed.root / "data/actor_manifests" / name).read_bytes() == content
        assert changed_once == (name != "0007_manifest.json"), name
    # What the targeted applies left for the next full one: the inventory, which describes every tier.
    rest = plan_json(changed)
    assert [(a["kind"], a["mapping"]) for a in rest["actions"]] == [("write-manifest", "inventory")]


def test_a_saved_targeted_plan_refuses_an_action_outside_its_targets(changed_once: Demo, tmp_path: Path) -> None:
    full = tmp_path / "full.json"
    assert changed_once.pixel("plan", "-q", "-out", str(full)).code == 0
    data = json.loads(full.read_text())
    data["targets"] = ["raw"]  # a hand edit: the actor upload is now outside the recorded target
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    before = changed_once.keys(changed_once.actor_bucket), changed_once.keys(changed_once.data_bucket)
    run = changed_once.pixel("apply", "-q", str(edited))
    assert run.code == 1
    assert "guard digest does not match" in run.err and "nothing was touched" in run.err
    # Whoever also recomputes the digest (it is no signature) still meets the scope check.
    data["guard_digest"] = guard_digest(data)
    edited.write_text(json.dumps(data))
    run = changed_once.pixel("apply", "-q", str(edited))
    assert run.code == 1
    assert "lies outside the plan's targets (raw)" in run.err and "nothing was touched" in run.err
    assert (changed_once.keys(changed_once.actor_bucket), changed_once.keys(changed_once.data_bucket)) == before


UNKNOWN = [
    ("nope", "--target 'nope' names no part of the specs"),
    ("actors/9999", "--target 'actors/9999' names no part of the specs"),
]


def test_final_dataset_as_a_target_plans_only_its_rebuild(changed: Demo) -> None:
    full = plan_json(changed)
    assert any(a["mapping"] != "final_dataset" for a in full["actions"])  # the rest has work to do
    source = "datasets/gdrive/processed/cot_reasoning/clinical_cot.jsonl"
    body = changed.client.get_object(Bucket=changed.data_bucket, Key=source)["Body"].read()
    changed.client.put_object(Bucket=changed.data_bucket, Key=source, Body=body + b'{"id": "added-by-test"}\n')
    targeted = plan_json(changed, "--target", "final_dataset")
    assert targeted["targets"] == ["final_dataset"]
    assert [a["kind"] for a in targeted["actions"]][:1] == ["compile"]
    assert {a["mapping"] for a in targeted["actions"]} == {"final_dataset"}
    assert "clinical_cot changed" in targeted["actions"][0]["reason"]


def test_an_unknown_target_is_one_clear_error(changed_once: Demo) -> None:
    for target, words in UNKNOWN:
        for command in (["plan"], ["apply", "--auto-approve"]):
            run = changed_once.pixel(*command, "-q", "--target", target)
            assert run.code == 1
            assert words in run.err
    assert "actors/0042" in changed_once.pixel("plan", "--target", "nope").err  # it lists what there is


def test_a_targeted_apply_still_takes_the_lock_and_the_guards_still_hold(changed: Demo) -> None:
    now = time.time()
    holder = LockInfo(id="f" * 32, host="elsewhere", pid=1, started=now, renewed=now, lease_seconds=600)
    changed.client.put_object(Bucket=changed.actor_bucket, Key=".pixel/lock", Body=holder.to_json())
    before = changed.keys(changed.actor_bucket)
    run = changed.pixel("apply", "-q", "--auto-approve", "--target", "actors/7")
    assert run.code == 1
    assert f"is locked by apply {'f' * 32} (host elsewhere" in run.err
    assert changed.keys(changed.actor_bucket) == before
    changed.client.delete_object(Bucket=changed.actor_bucket, Key=".pixel/lock")

    (changed.root / "gdrive/raw/organise/clinical_cot.jsonl").unlink()  # raw prunes: the plan deletes its object
    key = "datasets/gdrive/raw/organise/clinical_cot.jsonl"
    assert ("delete", "raw", key) in keys_of(plan_json(changed, "--target", "raw"))
    before = changed.keys(changed.data_bucket)
    for command in (["plan"], ["apply", "--auto-approve"]):
        run = changed.pixel(*command, "-q", "--target", "raw", "--max-delete", "0")
        assert run.code == 1
        assert "more than --max-delete 0" in run.out + run.err
    assert changed.keys(changed.data_bucket) == before
