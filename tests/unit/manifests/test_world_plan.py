"""Actor manifests, registry and inventory planned and written on in-memory stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError

from reconciler.apply import ActionRunner, execute
from reconciler.manifests.record_index import index_key
from reconciler.model import ActionKind, FindingKind
from reconciler.plan.graph import build_graph
from reconciler.plan.guards import GuardLimits, check
from reconciler.plan.status import status_document
from reconciler.spec import load_schema
from reconciler.stores.memory import MemoryStore
from tests.unit.manifests.world import ACTOR, ACTOR_DIR, S3_DIR, World, build, jpeg, md5

MANIFEST = "data/actor_manifests/0042_manifest.json"
REGISTRY = "ai/data/dataset_registry.json"
INVENTORY = "ai/training_ready/data/s3_manifest.json"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build(tmp_path)


def validate(name: str, document: Any) -> None:
    Draft202012Validator(load_schema(name)).validate(document)


def url(n: int) -> str:
    return f"https://story-boards-assets.s3.us-west-1.amazonaws.com/{S3_DIR}/{ACTOR}_{n}.jpg"


def entry(n: int, data: bytes, status: str) -> dict[str, Any]:
    return {
        "filename": f"{ACTOR}_{n}.jpg",
        "local_path": f"{ACTOR_DIR}/{ACTOR}_{n}.jpg",
        "s3_url": url(n),
        "md5_hash": md5(data),
        "size_bytes": len(data),
        "size_mb": 0.0,
        "modified_timestamp": 0.0,  # memory stores have no mtimes
        "modified_date": "1970-01-01T00:00:00.000000",
        "status": status,
    }


def test_actor_in_all_four_states_gets_the_hand_checked_manifest(world: World) -> None:
    _, result, _ = world.apply()
    assert result.ok
    manifest = json.loads(world.ws.get(MANIFEST))
    validate("actor-manifest.schema.json", manifest)
    assert manifest == {
        "character_id": "0042",
        "character_name": ACTOR,
        "training_data": [
            entry(0, jpeg(0), "synced"),
            entry(1, jpeg(1), "local_only"),
            entry(2, jpeg(2), "s3_only"),
            entry(3, jpeg(3), "out_of_sync"),  # local side shown: md5 of the local file
        ],
        # No earlier manifest: the newest entry's time (memory stores have none), not the clock.
        "training_data_updated": "1970-01-01T00:00:00.000000",
        "statistics": {
            "training_images_count": 4,
            "training_data_size_mb": 0.0,
            "training_synced_count": 1,
            "training_local_only_count": 1,
            "training_s3_only_count": 1,
            "training_out_of_sync_count": 1,
        },
        "accountability": {
            "orphans": [f"{ACTOR_DIR}/response.json"],
            "missing": [f"{ACTOR}_4.jpg"],
            "conflicts": [f"{ACTOR}_3.jpg"],
        },
    }


def test_a_clean_actor_manifest_has_exactly_the_seed_keys(world: World) -> None:
    world.apply()
    manifest = json.loads(world.ws.get("data/actor_manifests/0007_manifest.json"))
    validate("actor-manifest.schema.json", manifest)
    assert sorted(manifest) == [
        "character_id",
        "character_name",
        "statistics",
        "training_data",
        "training_data_updated",
    ]
    assert [e["status"] for e in manifest["training_data"]] == ["synced", "synced"]  # uploaded, then rendered


def test_second_apply_plans_nothing_and_writes_nothing(world: World) -> None:
    world.apply()
    before = {key: world.ws.get(key) for key in (MANIFEST, REGISTRY, INVENTORY)}
    world.clock_ns += 10**12
    plan, result, writer = world.apply()
    assert not plan.actions
    assert result.outcomes == []
    assert writer.written == []
    assert {key: world.ws.get(key) for key in before} == before


def test_training_data_updated_moves_only_when_entries_change(world: World) -> None:
    world.apply()
    first = json.loads(world.ws.get("data/actor_manifests/0007_manifest.json"))["training_data_updated"]
    world.clock_ns += 86_400 * 10**9
    world.ws.put("data/actors/0007_asian_25_female/training_data/0007_asian_25_female_1.jpg", jpeg(99))
    plan, result, _ = world.apply()
    assert result.ok
    assert {a.kind for a in plan.actions if a.mapping == "actors/0007_asian_25_female"} == {
        ActionKind.UPLOAD,
        ActionKind.WRITE_MANIFEST,
    }
    changed = json.loads(world.ws.get("data/actor_manifests/0007_manifest.json"))
    assert changed["training_data_updated"] == "2025-10-10T08:53:20.000000" != first  # the injected clock
    untouched = json.loads(world.ws.get(MANIFEST))["training_data_updated"]
    assert untouched == "1970-01-01T00:00:00.000000"  # actor 0042 did not change: its date stays


@pytest.mark.parametrize("damage", ["edit", "delete"])
def test_a_damaged_manifest_is_restored_and_the_plan_says_so(world: World, damage: str) -> None:
    world.apply()
    good = world.ws.get(MANIFEST)
    if damage == "edit":
        world.ws.put(MANIFEST, good.replace(b'"training_images_count": 4', b'"training_images_count": 40'))
        # The entries are as they were, so their date is kept even though time has passed.
        world.clock_ns += 3600 * 10**9
    else:
        world.ws.delete(MANIFEST)
    plan = world.plan()
    [write] = plan.actions
    assert write.kind is ActionKind.WRITE_MANIFEST and write.target.key == MANIFEST
    assert ("edited by hand" if damage == "edit" else "missing") in write.reason
    world.apply()
    assert world.ws.get(MANIFEST) == good
    assert not world.plan().actions


def test_findings_orphan_missing_and_conflict(world: World) -> None:
    plan = world.plan()
    kinds = sorted((f.kind.value, f.key.rsplit("/", 1)[-1]) for f in plan.findings)
    assert kinds == [
        ("conflict", f"{ACTOR}_1.jpg"),
        ("conflict", f"{ACTOR}_2.jpg"),
        ("conflict", f"{ACTOR}_3.jpg"),
        ("missing", f"{ACTOR}_4.jpg"),
        ("missing", "ghost.json"),
        ("orphan", "response.json"),
    ]
    desired, observed = world.observe()
    strict = check(desired, observed, plan, GuardLimits(strict=True))
    assert not strict.applyable
    assert any("--strict: the plan has 6 finding(s)" in e for e in strict.errors)
    assert check(desired, observed, plan, GuardLimits()).applyable


def test_raw_object_is_organised_by_server_side_copy(world: World) -> None:
    reads: list[str] = []
    original_open = world.lake.open

    def counting_open(key: str, *, if_match: str | None = None) -> Any:
        reads.append(key)
        return original_open(key, if_match=if_match)

    world.lake.open = counting_open  # type: ignore[method-assign]
    plan, result, _ = world.apply()
    assert result.ok
    copy = next(a for a in plan.actions if a.kind is ActionKind.COPY)
    assert copy.source is not None and copy.source.key == "datasets/gdrive/raw/cot/reasoning.jsonl"
    assert copy.precondition.source_etag == md5(b'{"q": 1}\n{"q": 2}\n')
    assert world.lake.get("datasets/gdrive/processed/cot_reasoning/reasoning.jsonl") == b'{"q": 1}\n{"q": 2}\n'
    assert world.lake.get("datasets/gdrive/raw/cot/reasoning.jsonl")  # copy keeps the raw backup
    # No byte of the copy went through this machine; the only reads are of the organised objects, each once,
    # for its record index (built from bytes checked against the md5 the plan pinned).
    indexed = [a.source.key for a in plan.actions if a.mapping == "record-index" and a.source is not None]
    assert sorted(reads) == sorted(indexed) and "datasets/gdrive/raw/cot/reasoning.jsonl" not in reads


def test_move_deletes_its_source_only_after_the_copy_is_verified(world: World) -> None:
    plan = world.plan()
    target = "datasets/gdrive/processed/edge_cases/crisis.json"
    source = "datasets/gdrive/raw/edge/crisis.json"
    ids = {a.kind: a.id for a in plan.actions if target in a.id or source in a.id}
    assert ids[ActionKind.MOVE] == f"move:lake:{target}"
    assert (ids[ActionKind.MOVE], ids[ActionKind.VERIFY]) in plan.edges
    assert (ids[ActionKind.VERIFY], ids[ActionKind.DELETE]) in plan.edges
    delete = next(a for a in plan.actions if a.id == ids[ActionKind.DELETE])
    assert delete.target.key == source and delete.precondition.target_etag == md5(b'{"crisis": true}')


class LossyCopies(MemoryStore):
    """A bucket whose server-side copies land truncated: the copy must not be trusted."""

    def copy(self, src_key: str, dst_key: str, **kwargs: Any) -> Any:
        self.put(dst_key, self.get(src_key)[:-1])
        return self.stat(dst_key)


def test_a_move_whose_copy_is_wrong_keeps_its_source(tmp_path: Path) -> None:
    world = build(tmp_path)
    lossy = LossyCopies("lake")
    for key in world.lake:
        lossy.put(key, world.lake.get(key))
    world.lake = lossy
    desired, observed = world.observe()
    from reconciler.plan import plan as make_plan

    plan = make_plan(desired, observed)
    result = execute(build_graph(plan), ActionRunner(world.stores), parallelism=2)
    failed = {o.action.id for o in result.failed}
    skipped = {o.action.id for o in result.skipped}
    assert "move:lake:datasets/gdrive/processed/edge_cases/crisis.json" in failed
    assert "delete:lake:datasets/gdrive/raw/edge/crisis.json" in skipped
    assert lossy.get("datasets/gdrive/raw/edge/crisis.json") == b'{"crisis": true}'


def test_registry_and_inventory_validate_and_count(world: World) -> None:
    world.apply()
    registry = json.loads(world.ws.get(REGISTRY))
    validate("dataset-registry.schema.json", registry)
    body = b'{"q": 1}\n{"q": 2}\n'
    index = index_key(md5(body), "jsonl")
    assert json.loads(world.lake.get(index))["records"] == 2
    assert registry["datasets"]["reasoning"] == {
        "s3_path": "s3://pixel-data/datasets/gdrive/processed/cot_reasoning/reasoning.jsonl",
        "tier": "processed",
        "category": "cot_reasoning",
        "format": "jsonl",
        "stages": ["stage1"],
        "source": "s3://pixel-data/datasets/gdrive/raw/cot/reasoning.jsonl",
        "organise": "copy",
        "status": "present",
        "size_bytes": 18,
        "md5": md5(b'{"q": 1}\n{"q": 2}\n'),
        "object_count": 1,
        # The record index apply wrote beside it, vouched for by its md5 (reconciler/manifests/record_index.py).
        "record_index": {"md5": md5(world.lake.get(index)), "s3_path": f"s3://pixel-data/{index}"},
    }
    assert registry["datasets"]["ghost"]["status"] == "absent"
    assert registry["statistics"]["present_count"] == 3
    inventory = json.loads(world.ws.get(INVENTORY))
    validate("inventory.schema.json", inventory)
    assert inventory["tiers"]["processed"]["object_count"] == 3
    assert inventory["tiers"]["processed"]["categories"]["edge_cases"] == {"object_count": 1, "total_bytes": 16}
    assert inventory["tiers"]["raw"]["object_count"] == 1  # crisis.json was moved out
    assert inventory["tiers"]["actors"]["object_count"] == 5
    assert inventory["totals"]["object_count"] == 9


def test_status_counts_agree_with_the_plan(world: World) -> None:
    desired, observed = world.observe()
    from reconciler.plan import plan as make_plan

    plan = make_plan(desired, observed)
    status = status_document(desired, observed, plan)
    actor = status["actors"]["0042"]
    assert {s: actor[s]["count"] for s in ("synced", "local_only", "s3_only", "out_of_sync")} == {
        "synced": 1,
        "local_only": 1,
        "s3_only": 1,
        "out_of_sync": 1,
    }
    assert (actor["orphans"], actor["missing"]) == (1, 1)
    uploads = [a for a in plan.actions if a.mapping == "actors/0007_asian_25_female" and a.kind is ActionKind.UPLOAD]
    assert status["actors"]["0007"]["local_only"]["count"] == len(uploads) == 2
    assert status["findings"][FindingKind.ORPHAN.value] == status["totals"]["orphans"] == 1
    assert status["tiers"]["actors"]["local_only"]["count"] == 3


def test_a_raw_file_uploaded_by_this_plan_is_organised_in_the_same_apply(tmp_path: Path) -> None:
    world = build(
        tmp_path,
        """\
        mappings:
          - {name: raw, from: "ws:staging/raw", to: "lake:datasets/gdrive/raw/", prune: true, exclude: ["edge/**"]}
        """,
    )
    data = b'{"fresh": 1}\n'
    world.lake.delete("datasets/gdrive/raw/cot/reasoning.jsonl")
    world.ws.put("staging/raw/cot/reasoning.jsonl", data)
    plan, result, _ = world.apply()
    upload = "upload:lake:datasets/gdrive/raw/cot/reasoning.jsonl"
    copy = "copy:lake:datasets/gdrive/processed/cot_reasoning/reasoning.jsonl"
    assert (upload, copy) in plan.edges
    assert result.ok
    assert world.lake.get("datasets/gdrive/processed/cot_reasoning/reasoning.jsonl") == data
    assert not world.plan().actions


@pytest.mark.parametrize(
    "record_index",
    [
        {"md5": "0" * 31, "s3_path": f"s3://pixel-data/.pixel/index/{'0' * 32}.jsonl.json"},
        {"md5": "0" * 32, "s3_path": "s3://pixel-data/datasets/anywhere.json"},
        {"md5": "0" * 32},
        {"md5": "0" * 32, "s3_path": f"s3://pixel-data/.pixel/index/{'0' * 32}.jsonl.json", "spans": []},
    ],
)
def test_the_registry_schema_refuses_a_malformed_record_index(world: World, record_index: dict[str, Any]) -> None:
    world.apply()
    entry = json.loads(world.ws.get(REGISTRY))["datasets"]["reasoning"]
    # A declared dataset's entry, against the definition it must follow (the registry also keeps entries no spec
    # declares as written, so the whole document would accept anything under "datasets").
    dataset = {"$defs": load_schema("dataset-registry.schema.json")["$defs"], "$ref": "#/$defs/dataset"}
    Draft202012Validator(dataset).validate(entry)
    entry["record_index"] = record_index
    with pytest.raises(ValidationError):
        Draft202012Validator(dataset).validate(entry)
