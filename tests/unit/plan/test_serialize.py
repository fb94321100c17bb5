"""The saved-plan JSON form: exact round trip, schema on both sides, clear refusals."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.commands import planfile
from reconciler.model import (
    Action,
    ActionKind,
    Authority,
    Change,
    Desired,
    Finding,
    FindingKind,
    LocalStoreSpec,
    MappingSpec,
    ObjectRef,
    Plan,
    Precondition,
    S3StoreSpec,
)
from reconciler.observe import StreamingHasher, observe
from reconciler.plan import plan as make_plan
from reconciler.plan import serialize
from reconciler.plan.serialize import PlanFileError
from reconciler.plan.summary import tally
from reconciler.schemas import load_schema
from reconciler.stores.memory import MemoryStore

MD5 = "0123456789abcdef0123456789abcdef"


def rich_plan() -> Plan:
    upload = Action(
        id="upload:s3:raw/a.jsonl",
        kind=ActionKind.UPLOAD,
        change=Change.CREATE,
        mapping="raw",
        target=ObjectRef("s3", "raw/a.jsonl"),
        reason="new file (10 B)",
        source=ObjectRef("disk", "raw/a.jsonl"),
        size=10,
        md5=MD5,
        precondition=Precondition(
            target_absent=True, source_etag="10-1700000000000000000", source_size=10,
            source_mtime_ns=1_700_000_000_000_000_000, source_md5=MD5,
        ),
    )
    delete = Action(
        id="delete:s3:raw/old.jsonl",
        kind=ActionKind.DELETE,
        change=Change.DELETE,
        mapping="raw",
        target=ObjectRef("s3", "raw/old.jsonl"),
        reason="not in the local tree; s3 is pruned here",
        size=3,
        md5=None,
        precondition=Precondition(target_etag="abc-2"),
    )
    rehash = Action(
        id="rehash:s3:raw/ü nicode.bin",
        kind=ActionKind.REHASH,
        change=Change.READ,
        mapping="raw",
        target=ObjectRef("s3", "raw/ü nicode.bin"),
        reason="md5 unknown",
        size=1 << 40,
        precondition=Precondition(target_etag="e-3", source_etag="e-3"),
    )
    return Plan(
        actions=(upload, delete, rehash),
        edges=((upload.id, delete.id),),
        findings=(Finding(FindingKind.UNMANAGED, "processed", "s3:processed/x", "left alone"),),
        spec_digest="f" * 64,
        errors=("mapping 'raw' would delete too much",),
        object_counts={"raw": 40},
    )


def test_round_trip_is_exact_both_ways(tmp_path: Path) -> None:
    plan = rich_plan()
    data = serialize.to_dict(plan)
    assert serialize.from_dict(data) == plan
    assert serialize.to_dict(serialize.from_dict(json.loads(json.dumps(data)))) == data
    path = tmp_path / "plan.json"
    planfile.dump(plan, path)
    assert planfile.load(path) == plan
    assert serialize.loads(serialize.dumps(plan)) == plan


def test_file_carries_version_summary_applyable_and_every_action_field() -> None:
    plan = rich_plan()
    data = serialize.to_dict(plan)
    assert data["format_version"] == 2
    assert data["applyable"] is False
    assert data["guard_limits"] == {
        "max_delete": 100, "max_superseded": 10_000, "allow_mass_delete": False, "strict": False
    }
    assert re.fullmatch("[0-9a-f]{64}", data["guard_digest"])
    assert data["summary"]["upload"] == {"count": 1, "bytes": 10}
    assert data["summary"] == {k: {"count": t.count, "bytes": t.bytes} for k, t in tally(plan).items()}
    first = data["actions"][0]
    assert set(first) == {
        "id", "kind", "change", "mapping", "store", "key", "source", "size", "md5", "reason", "precondition"
    }
    assert first["store"] == "s3" and first["key"] == "raw/a.jsonl"
    assert first["precondition"]["target_absent"] is True
    assert data["actions"][1]["precondition"]["target_etag"] == "abc-2"
    assert data["edges"] == [["upload:s3:raw/a.jsonl", "delete:s3:raw/old.jsonl"]]


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=6, unique=True),
    sizes=st.integers(min_value=0, max_value=1 << 50),
    absent=st.booleans(),
    etag=st.none() | st.text(max_size=40),
)
def test_round_trip_property(keys: list[str], sizes: int, absent: bool, etag: str | None) -> None:
    actions = tuple(
        Action(
            id=f"upload:s3:{k}",
            kind=ActionKind.UPLOAD,
            change=Change.CREATE if absent else Change.UPDATE,
            mapping="m",
            target=ObjectRef("s3", k),
            reason=k,
            source=ObjectRef("disk", k),
            size=sizes,
            md5=MD5,
            precondition=Precondition(target_absent=absent, target_etag=etag, source_size=sizes),
        )
        for k in keys
    )
    edges = tuple((a.id, b.id) for a, b in itertools.pairwise(actions))
    plan = Plan(actions=actions, edges=edges, spec_digest="d")
    assert serialize.loads(serialize.dumps(plan)) == plan


def test_schema_enums_track_the_model() -> None:
    schema = load_schema("plan.schema.json")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    defs = schema["$defs"]
    assert set(defs["action"]["properties"]["kind"]["enum"]) == {k.value for k in ActionKind}
    assert set(defs["action"]["properties"]["change"]["enum"]) == {c.value for c in Change}
    assert set(defs["finding"]["properties"]["kind"]["enum"]) == {k.value for k in FindingKind}


def _broken(mutate: Any) -> dict[str, Any]:
    data = serialize.to_dict(rich_plan())
    mutate(data)
    return data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format_version=1), "format_version 1 is not supported"),
        (lambda d: d.pop("object_counts"), "'object_counts' is a required property"),
        (lambda d: d["object_counts"].update(raw=99), "guard digest does not match"),
        (lambda d: d["guard_limits"].update(strict=True), "guard digest does not match"),
        (lambda d: d["findings"].clear(), "guard digest does not match"),
        (lambda d: d["actions"][0].pop("precondition"), "at actions/0"),
        (lambda d: d["actions"][1].update(kind="explode"), "at actions/1/kind"),
        (lambda d: d["actions"][0].update(md5="not-an-md5"), "at actions/0/md5"),
        (lambda d: d.update(secret="x"), "Additional properties"),
        (lambda d: d["edges"].append(["upload:s3:raw/a.jsonl", "nope"]), "names an unknown action"),
        (lambda d: d.update(applyable=True), "contradicts"),
        (lambda d: d["actions"].append(d["actions"][0]), "share one id"),
    ],
)
def test_bad_files_are_refused_with_the_reason(mutate: Any, message: str) -> None:
    with pytest.raises(PlanFileError, match=message):
        serialize.from_dict(_broken(mutate), source="plan.json")


def test_not_json_and_missing_file_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text('{"format_version": 1,')
    with pytest.raises(PlanFileError, match=r"plan.json: not JSON \(line 1"):
        planfile.load(bad)
    with pytest.raises(PlanFileError, match="does not exist"):
        planfile.load(tmp_path / "missing.json")


def test_a_real_plan_file_holds_no_file_content_and_no_temp_file_is_left(tmp_path: Path) -> None:
    desired = Desired(
        stores={"disk": LocalStoreSpec("disk", "/x"), "s3": S3StoreSpec("s3", "bucket")},
        mappings=(MappingSpec("m", "disk", "src", "s3", "pre/", authority=Authority.LOCAL, prune=True),),
        spec_digest="abc",
    )
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("src/new.txt", b"CONTENT-THAT-MUST-NOT-LEAK-1")
    s3.put("pre/gone.txt", b"CONTENT-THAT-MUST-NOT-LEAK-2")
    plan = make_plan(desired, observe(desired, {"disk": disk, "s3": s3}, StreamingHasher()))
    path = tmp_path / "plan.json"
    planfile.dump(plan, path)
    text = path.read_text()
    assert "CONTENT-THAT-MUST-NOT-LEAK" not in text
    assert planfile.load(path) == plan
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]


def test_writing_into_a_missing_directory_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError, match="cannot write the plan file"):
        planfile.dump(rich_plan(), tmp_path / "no" / "such" / "plan.json")
