"""The training-data world on SeaweedFS: the repository's example specs on the demo data.

Actor manifests, the registry and the inventory written by `pixel apply`;
raw/acquired objects organised into processed by server-side copy; `pixel
status` against the plan; damaged manifests restored.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler.dev.world_data import ACTOR_PREFIX, ACTORS, BASE_MTIME_NS, image
from reconciler.manifests.common import iso_from_ns
from reconciler.spec import load_schema
from tests.integration.demo_world import Demo, make_demo
from tests.integration.pixelenv import Run

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
A42 = next(a for a in ACTORS if a.actor_id == "0042")


@pytest.fixture
def demo(tmp_path: Path, seaweed: Any, bucket: str) -> Demo:
    """The repository's specs with their two buckets renamed to fresh ones, seeded with the demo world."""
    return make_demo(tmp_path, seaweed, bucket)


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name))


def applied(demo: Demo) -> Run:
    run = demo.pixel("apply", "--auto-approve", "-q")
    assert run.code == 0, run.out + run.err
    return run


def test_actor_manifest_in_all_four_states_then_a_second_apply_rewrites_nothing(demo: Demo) -> None:
    started = time.time()
    applied(demo)
    path = demo.manifest("0042")
    manifest = json.loads(path.read_bytes())
    validator("actor-manifest.schema.json").validate(manifest)

    # Hand-checked from the demo data: 0..7 are in S3, 0..9 local, 6 and 7 edited locally, 10 only in S3,
    # 11 declared by `count: 12` and nowhere; authority none, so nothing was uploaded or downloaded.
    expected_status = {i: "synced" for i in range(6)} | {6: "out_of_sync", 7: "out_of_sync"}
    expected_status |= {8: "local_only", 9: "local_only", 10: "s3_only"}
    entries = manifest["training_data"]
    assert [e["filename"] for e in entries] == [f"{A42.name}_{i}.jpg" for i in range(11)]
    assert {int(e["filename"].rsplit("_", 1)[1][:-4]): e["status"] for e in entries} == expected_status
    assert manifest["statistics"] == {
        "training_images_count": 11,
        "training_data_size_mb": 0.0,
        "training_synced_count": 6,
        "training_local_only_count": 2,
        "training_s3_only_count": 1,
        "training_out_of_sync_count": 2,
    }
    assert manifest["accountability"] == {
        "orphans": [f"data/actors/{A42.name}/training_data/response.json"],
        "missing": [f"{A42.name}_11.jpg"],
        "conflicts": [f"{A42.name}_6.jpg", f"{A42.name}_7.jpg"],
    }
    six = entries[6]
    local6 = image(A42, 6, "local")
    mtime6 = BASE_MTIME_NS + (4200 + 6) * 10**9
    assert six == {
        "filename": f"{A42.name}_6.jpg",
        "local_path": f"data/actors/{A42.name}/training_data/{A42.name}_6.jpg",
        "s3_url": f"{demo.env['PIXEL_S3_ENDPOINT']}/{demo.actor_bucket}/{ACTOR_PREFIX}{A42.name}/{A42.name}_6.jpg",
        "md5_hash": hashlib.md5(local6).hexdigest(),
        "size_bytes": len(local6),
        "size_mb": 0.0,
        "modified_timestamp": mtime6 / 1e9,
        "modified_date": iso_from_ns(mtime6),
        "status": "out_of_sync",
    }
    assert entries[10]["modified_timestamp"] >= int(started) - 1  # S3-only: the object's LastModified
    assert entries[10]["md5_hash"] == hashlib.md5(image(A42, 10, "s3")).hexdigest()

    before = path.stat().st_mtime_ns, path.read_bytes()
    again = applied(demo)
    # Nothing to do, but the demo world's findings (conflicts, missing images) are still there: 14 findings,
    # 8 causes; -q leaves them to `pixel plan`.
    assert again.out.splitlines()[-1] == "No changes to apply; 8 findings not listed (-q; `pixel plan` lists them)."
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before
    for other in ("0007", "0013", "0021"):
        validator("actor-manifest.schema.json").validate(json.loads(demo.manifest(other).read_bytes()))
    registry = json.loads((demo.root / "ai" / "data" / "dataset_registry.json").read_bytes())
    validator("dataset-registry.schema.json").validate(registry)
    inventory = json.loads((demo.root / "ai" / "training_ready" / "data" / "s3_manifest.json").read_bytes())
    validator("inventory.schema.json").validate(inventory)
    assert inventory["tiers"]["processed"]["object_count"] == 8
    assert {c: v["object_count"] for c, v in inventory["tiers"]["processed"]["categories"].items()} == {
        "cot_reasoning": 2,
        "professional_therapeutic": 2,
        "priority": 2,
        "edge_cases": 2,
    }
    assert inventory["tiers"]["acquired"]["object_count"] == 0  # both acquired objects were moved


@pytest.fixture
def s3_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Every object request pixel's stores send in this process (the direct transport), as (operation, key)."""
    from reconciler.stores.s3.direct.raw import DirectTransport

    calls: list[tuple[str, str]] = []
    # method -> (S3 operation, which argument is the key the operation names: a copy's is its destination)
    operations = {"get_object": ("GetObject", 0), "head_object": ("HeadObject", 0), "put_object": ("PutObject", 0),
                  "copy_object": ("CopyObject", 1), "delete_object": ("DeleteObject", 0)}
    for method, (operation, at) in operations.items():
        real = getattr(DirectTransport, method)

        def recording(self: Any, *args: Any, _real: Any = real, _operation: str = operation, _at: int = at) -> Any:
            calls.append((_operation, str(args[_at])))
            return _real(self, *args)

        monkeypatch.setattr(DirectTransport, method, recording)
    yield calls


def apply_in_process(demo: Demo, monkeypatch: pytest.MonkeyPatch, plan_file: Path | None = None) -> int:
    from reconciler.commands.apply import apply

    for name, value in demo.env.items():
        monkeypatch.setenv(name, value)
    return apply(demo.specs, auto_approve=True, parallelism=4, plan_file=plan_file)


def test_raw_is_organised_by_server_side_copy_and_a_move_deletes_only_after_verifying(
    demo: Demo, monkeypatch: pytest.MonkeyPatch, s3_calls: list[tuple[str, str]]
) -> None:
    assert apply_in_process(demo, monkeypatch) == 0
    processed = "datasets/gdrive/processed/"
    raw_copy = (f"{processed}cot_reasoning/clinical_cot.jsonl", "datasets/gdrive/raw/organise/clinical_cot.jsonl")
    moved = (f"{processed}priority/crisis_protocols.json", "datasets/acquired/vendor/crisis_protocols.json")

    # No GET of a raw or acquired body: organising is CopyObject inside the bucket. The only dataset reads
    # are the final dataset's compile streaming the organised (processed) objects once they are there.
    gets = [c[1] for c in s3_calls if c[0] == "GetObject" and c[1].startswith("datasets/")]
    assert [k for k in gets if not k.startswith(processed)] == []
    assert all(s3_calls.index(("CopyObject", k)) < s3_calls.index(("GetObject", k)) for k in gets if
               ("CopyObject", k) in s3_calls)
    assert ("CopyObject", raw_copy[0]) in s3_calls and ("CopyObject", moved[0]) in s3_calls
    body = demo.client.get_object(Bucket=demo.data_bucket, Key=raw_copy[0])["Body"].read()
    assert body == (demo.root / "gdrive" / "raw" / "organise" / "clinical_cot.jsonl").read_bytes()
    assert raw_copy[1] in demo.keys(demo.data_bucket)  # copy: raw stays as the backup

    # The move: copy, then a HEAD of the new key (the verify node), and only then the source's delete.
    order = [c for c in s3_calls if c[1] in moved]
    copy_at = order.index(("CopyObject", moved[0]))
    delete_at = order.index(("DeleteObject", moved[1]))
    assert copy_at < delete_at
    # The copy's own check of what landed, then the verify node: both HEAD the new key before the delete.
    assert order[copy_at + 1 : delete_at].count(("HeadObject", moved[0])) >= 2
    assert moved[1] not in demo.keys(demo.data_bucket)


def test_a_move_whose_copy_fails_keeps_its_source(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    plan_file = demo.root.parent / "plan.json"
    planned = demo.pixel("plan", "-out", str(plan_file), "-q")
    assert planned.code == 0, planned.err
    source = "datasets/acquired/vendor/socratic_chains.jsonl"
    # Another tool rewrites the source after the plan: CopySourceIfMatch (the plan's ETag) must refuse the copy.
    demo.client.put_object(Bucket=demo.data_bucket, Key=source, Body=b'{"rewritten": true}\n')
    code = apply_in_process(demo, monkeypatch, plan_file)
    assert code == 1
    assert source in demo.keys(demo.data_bucket)
    assert "datasets/gdrive/processed/cot_reasoning/socratic_chains.jsonl" not in demo.keys(demo.data_bucket)
    body = demo.client.get_object(Bucket=demo.data_bucket, Key=source)["Body"].read()
    assert body == b'{"rewritten": true}\n'


def _plan_json(demo: Demo) -> dict[str, Any]:
    out = demo.root.parent / "status-plan.json"
    run = demo.pixel("plan", "-out", str(out), "-q")
    assert run.code == 0, run.err
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_status_and_the_plan_agree_on_every_count_for_the_demo_data(demo: Demo) -> None:
    run = demo.pixel("status", "--format", "json", "-q")
    assert run.code == 0, run.err
    status = json.loads(run.out)
    plan = _plan_json(demo)
    actions, findings = plan["actions"], plan["findings"]

    def acts(mapping: str, kind: str, change: str) -> int:
        return sum(1 for a in actions if a["mapping"] == mapping and a["kind"] == kind and a["change"] == change)

    def found(mapping: str, kind: str, text: str = "") -> int:
        return sum(1 for f in findings if f["mapping"] == mapping and f["kind"] == kind and text in f["message"])

    checked = Counter[str]()
    for actor_id, counts in status["actors"].items():
        mapping = f"actors/{counts['name']}"
        n = {s: counts[s]["count"] for s in ("synced", "local_only", "s3_only", "out_of_sync")}
        if actor_id == "0042":  # authority none: every difference is a conflict finding
            assert n["local_only"] == found(mapping, "conflict", "local only") == 2
            assert n["s3_only"] == found(mapping, "conflict", "S3 only") == 1
            assert n["out_of_sync"] == found(mapping, "conflict", "out of sync") == 2
        else:  # authority local: uploads, updates, and S3-only images left alone
            assert n["local_only"] == acts(mapping, "upload", "create")
            assert n["out_of_sync"] == acts(mapping, "upload", "update")
            assert n["s3_only"] == found(mapping, "unmanaged")
        assert counts["orphans"] == found(mapping, "orphan")
        assert counts["missing"] == found(mapping, "missing")
        checked.update(k for k, v in n.items() if v)
    assert set(checked) == {"synced", "local_only", "s3_only", "out_of_sync"}  # the demo shows every state
    raw = status["mappings"]["raw"]
    assert raw["local_only"]["count"] == acts("raw", "upload", "create") == 4
    datasets = status["datasets"]
    organising = sum(1 for a in actions if a["mapping"] == "datasets" and a["kind"] in ("copy", "move", "upload"))
    assert datasets["pending"] == organising == 8
    assert datasets["missing"] == found("datasets", "missing") == 0
    tier = status["tiers"]["actors"]
    assert tier["local_only"]["count"] == sum(a["local_only"]["count"] for a in status["actors"].values())
    assert status["totals"]["orphans"] == sum(1 for f in findings if f["kind"] == "orphan") == 1
    assert status["totals"]["missing"] == found("actors/0042_european_30_male", "missing") == 1


def test_a_manifest_edited_by_hand_or_deleted_is_restored_and_the_plan_says_so(demo: Demo) -> None:
    applied(demo)
    edited, deleted = demo.manifest("0013"), demo.manifest("0007")
    good_edited, good_deleted = edited.read_bytes(), deleted.read_bytes()
    edited.write_bytes(good_edited.replace(b'"training_synced_count": 12', b'"training_synced_count": 14'))
    deleted.unlink()

    planned = demo.pixel("plan", "--detailed-exitcode")
    assert planned.code == 2, planned.out + planned.err
    assert re.search(r"~ data/actor_manifests/0013_manifest.json .*edited by hand", planned.out)
    assert re.search(r"\+ data/actor_manifests/0007_manifest.json .*missing: generated", planned.out)
    assert "2 to write-manifest" in planned.out

    applied(demo)
    assert edited.read_bytes() == good_edited
    assert deleted.read_bytes() == good_deleted  # same entries, so even training_data_updated came back
    assert demo.pixel("plan", "--detailed-exitcode").code == 0


def test_strict_turns_findings_into_exit_1(demo: Demo) -> None:
    strict = demo.pixel("plan", "--strict")
    assert strict.code == 1
    assert "--strict: the plan has" in strict.out
    assert "orphan" in strict.out
