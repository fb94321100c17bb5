"""Saved plans on SeaweedFS: apply exactly the file, refuse when stale, 412 fails only that action."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pixelenv import pixel_in_process, write_specs

pytestmark = pytest.mark.integration


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def keys(client: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def body(client: Any, bucket: str, key: str) -> bytes:
    data: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


@pytest.fixture
def world(tmp_path: Path, seaweed: Any, bucket: str) -> dict[str, Any]:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    for name in ("a", "b", "c", "d"):
        (root / "raw" / f"{name}.jsonl").write_bytes(f'{{"id": "{name}"}}\n'.encode())
    specs = write_specs(
        tmp_path / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True}],
    )
    env = seaweed.env()
    assert pixel_in_process(["apply", "--auto-approve", "--specs", str(specs)], env).code == 0
    return {
        "root": root, "specs": specs, "env": env, "client": seaweed.client(), "bucket": bucket,
        "plan": tmp_path / "plan.json",
    }


def run(world: dict[str, Any], *args: str) -> Any:
    return pixel_in_process([*args[:1], "--specs", str(world["specs"]), *args[1:]], world["env"])


def test_apply_file_applies_exactly_the_saved_plan(world: dict[str, Any]) -> None:
    raw = world["root"] / "raw"
    (raw / "new.jsonl").write_bytes(b"planned\n")
    planned = run(world, "plan", "-out", str(world["plan"]))
    assert planned.code == 0, planned.err
    assert f"Saved the plan to {world['plan']}" in planned.out
    (raw / "late.jsonl").write_bytes(b"arrived after the review\n")  # not in the reviewed plan

    shown = pixel_in_process(["show", str(world["plan"])], world["env"])
    assert shown.code == 0, shown.err
    assert "+ datasets/raw/new.jsonl" in shown.out and "late.jsonl" not in shown.out
    as_json = json.loads(pixel_in_process(["show", "--format", "json", str(world["plan"])], world["env"]).out)
    assert as_json["format_version"] == 2 and as_json["summary"]["upload"]["count"] == 1
    assert as_json["actions"][0]["precondition"]["target_absent"] is True

    applied = run(world, "apply", "--format", "json", str(world["plan"]))
    assert applied.code == 0, applied.err
    report = json.loads(applied.out)
    assert report["status"] == "ok" and report["counts"] == {"done": 1, "failed": 0, "skipped": 0}
    client, bucket = world["client"], world["bucket"]
    assert "datasets/raw/new.jsonl" in keys(client, bucket)
    assert "datasets/raw/late.jsonl" not in keys(client, bucket)
    assert ".pixel/lock" not in keys(client, bucket)  # released
    assert "+ datasets/raw/late.jsonl" in run(world, "plan").out


def test_object_changed_since_the_plan_fails_only_its_action_with_412(world: dict[str, Any]) -> None:
    client, bucket, raw = world["client"], world["bucket"], world["root"] / "raw"
    client.put_object(Bucket=bucket, Key="datasets/raw/stale.jsonl", Body=b"to prune")
    (raw / "a.jsonl").write_bytes(b"a v2\n")  # overwrite: If-Match
    (raw / "b.jsonl").write_bytes(b"b v2\n")  # will depend on a (edge added below)
    (raw / "c.jsonl").write_bytes(b"c v2\n")  # independent: must still happen
    (raw / "e.jsonl").write_bytes(b"e new\n")  # create: If-None-Match: *
    (raw / "f.jsonl").write_bytes(b"f new\n")  # local source edited after the plan
    assert run(world, "plan", "-out", str(world["plan"])).code == 0

    # Chain b after a, as a plan with a dependency would: a failed action must skip its dependents.
    data = json.loads(world["plan"].read_text())
    data["edges"].append(["upload:s3:datasets/raw/a.jsonl", "upload:s3:datasets/raw/b.jsonl"])
    world["plan"].write_text(json.dumps(data))

    # Between review and apply, others touch the bucket and the disk.
    client.put_object(Bucket=bucket, Key="datasets/raw/a.jsonl", Body=b"theirs a")
    client.put_object(Bucket=bucket, Key="datasets/raw/e.jsonl", Body=b"theirs e")
    client.put_object(Bucket=bucket, Key="datasets/raw/stale.jsonl", Body=b"someone still needs this")
    f = raw / "f.jsonl"
    f.write_bytes(b"f edited after review\n")
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000_000))

    applied = run(world, "apply", "--format", "json", str(world["plan"]))
    assert applied.code == 1, applied.err
    report = json.loads(applied.out)
    assert report["status"] == "failed"
    failed = {row["key"]: row for row in report["failed"]}
    assert set(failed) == {
        "datasets/raw/a.jsonl", "datasets/raw/e.jsonl", "datasets/raw/stale.jsonl", "datasets/raw/f.jsonl"
    }
    for key in ("datasets/raw/a.jsonl", "datasets/raw/e.jsonl", "datasets/raw/stale.jsonl"):
        assert failed[key]["code"] == "PreconditionFailed", failed[key]
        assert "changed since the plan" in failed[key]["error"]
    assert "changed since the plan" in failed["datasets/raw/f.jsonl"]["error"]
    assert [(r["key"], r["blocked_by"]) for r in report["skipped"]] == [
        ("datasets/raw/b.jsonl", "upload:s3:datasets/raw/a.jsonl")
    ]
    assert [r["key"] for r in report["done"]] == ["datasets/raw/c.jsonl"]

    # Every object that changed was left exactly as the other writer left it.
    assert body(client, bucket, "datasets/raw/a.jsonl") == b"theirs a"
    assert body(client, bucket, "datasets/raw/e.jsonl") == b"theirs e"
    assert body(client, bucket, "datasets/raw/stale.jsonl") == b"someone still needs this"
    assert body(client, bucket, "datasets/raw/b.jsonl") == b'{"id": "b"}\n'  # skipped: untouched
    assert "datasets/raw/f.jsonl" not in keys(client, bucket)
    assert body(client, bucket, "datasets/raw/c.jsonl") == b"c v2\n"

    text = run(world, "apply", str(world["plan"]))  # the same failure, as text
    assert text.code == 1
    assert "[PreconditionFailed]" in text.out and "re-run pixel plan" in text.out
    assert "  - 1 action not started: upload:s3:datasets/raw/a.jsonl failed" in text.out


def test_a_file_checked_out_again_with_the_planned_bytes_is_uploaded_and_a_same_size_edit_is_not(
    world: dict[str, Any],
) -> None:
    """A saved plan applied in another job's checkout: every file is written again (new inode, ctime, mtime).
    The planned bytes still go; a same-size edit with a moved mtime is refused, and never uploaded."""
    client, bucket, raw = world["client"], world["bucket"], world["root"] / "raw"
    (raw / "g.jsonl").write_bytes(b"g planned\n")
    (raw / "h.jsonl").write_bytes(b"h planned\n")
    assert run(world, "plan", "-out", str(world["plan"])).code == 0

    for name, data in (("g.jsonl", b"g planned\n"), ("h.jsonl", b"h changed\n")):
        path = raw / name
        mtime = path.stat().st_mtime_ns
        path.unlink()
        path.write_bytes(data)
        os.utime(path, ns=(mtime + 5_000_000_000, mtime + 5_000_000_000))

    applied = run(world, "apply", "--format", "json", str(world["plan"]))
    assert applied.code == 1, applied.err
    report = json.loads(applied.out)
    assert [r["key"] for r in report["done"]] == ["datasets/raw/g.jsonl"]
    assert [(r["key"], r["code"]) for r in report["failed"]] == [("datasets/raw/h.jsonl", "412")]
    assert "changed since the plan" in report["failed"][0]["error"]
    assert body(client, bucket, "datasets/raw/g.jsonl") == b"g planned\n"
    assert "datasets/raw/h.jsonl" not in keys(client, bucket)


def test_changed_specs_make_the_plan_stale_before_anything_is_touched(world: dict[str, Any]) -> None:
    client, bucket = world["client"], world["bucket"]
    (world["root"] / "raw" / "new.jsonl").write_bytes(b"x\n")
    assert run(world, "plan", "-out", str(world["plan"])).code == 0
    spec = world["specs"] / "specs.yaml"
    spec.write_text(spec.read_text().replace("prune: true", "prune: false"))
    before = keys(client, bucket)

    refused = run(world, "apply", str(world["plan"]))
    assert refused.code == 1
    assert "plan is stale" in refused.err and "nothing was touched" in refused.err
    assert "Traceback" not in refused.err
    assert keys(client, bucket) == before  # no upload, and no lock object was ever created

    as_json = run(world, "apply", "--format", "json", str(world["plan"]))
    assert as_json.code == 1
    assert json.loads(as_json.out)["status"] == "error"
    assert "plan is stale" in json.loads(as_json.out)["errors"][0]


def test_a_comment_in_the_specs_does_not_make_the_plan_stale(world: dict[str, Any]) -> None:
    (world["root"] / "raw" / "new.jsonl").write_bytes(b"x\n")
    assert run(world, "plan", "-out", str(world["plan"])).code == 0
    spec = world["specs"] / "specs.yaml"
    spec.write_text("# reviewed by a human\n" + spec.read_text())
    assert run(world, "apply", str(world["plan"])).code == 0


def test_a_damaged_plan_file_is_refused(world: dict[str, Any]) -> None:
    (world["root"] / "raw" / "new.jsonl").write_bytes(b"x\n")
    assert run(world, "plan", "-out", str(world["plan"])).code == 0
    text = world["plan"].read_text()
    world["plan"].write_text(text[: len(text) // 2])
    result = run(world, "apply", str(world["plan"]))
    assert result.code == 1
    assert "not JSON" in result.err
    assert "datasets/raw/new.jsonl" not in keys(world["client"], world["bucket"])


def test_guard_errors_are_saved_and_the_plan_refused(world: dict[str, Any]) -> None:
    for name in ("a", "b", "c", "d"):  # the "wrong source directory" accident
        (world["root"] / "raw" / f"{name}.jsonl").unlink()
    for i in range(6):
        world["client"].put_object(Bucket=world["bucket"], Key=f"datasets/raw/extra-{i}", Body=b"e")
    planned = run(world, "plan", "-out", str(world["plan"]))
    assert planned.code == 1
    assert "would delete 10 of the 10 objects" in planned.out
    assert json.loads(world["plan"].read_text())["applyable"] is False
    refused = run(world, "apply", str(world["plan"]))
    assert refused.code == 1 and "cannot be applied" in refused.err
    assert len(keys(world["client"], world["bucket"])) == 10

    capped = run(world, "plan", "--allow-mass-delete", "--max-delete", "9")
    assert capped.code == 1 and "more than --max-delete 9" in capped.out
    allowed = run(world, "apply", "--auto-approve", "--allow-mass-delete")
    assert allowed.code == 0, allowed.out + allowed.err
    assert keys(world["client"], world["bucket"]) == []


def test_a_move_whose_source_changed_fails_and_its_source_delete_is_skipped(world: dict[str, Any]) -> None:
    client, bucket, raw = world["client"], world["bucket"], world["root"] / "raw"
    (raw / "a.jsonl").rename(raw / "renamed.jsonl")  # same bytes at a new key: a server-side move
    planned = run(world, "plan", "-out", str(world["plan"]))
    assert planned.code == 0 and "1 to move" in planned.out, planned.out
    plan = json.loads(world["plan"].read_text())
    move = next(a for a in plan["actions"] if a["kind"] == "move")
    assert move["source"] == {"store": "s3", "key": "datasets/raw/a.jsonl"}
    assert move["precondition"]["source_etag"] == md5(b'{"id": "a"}\n')
    assert [move["id"], "delete:s3:datasets/raw/a.jsonl"] in plan["edges"]  # the copy lands before the delete

    client.put_object(Bucket=bucket, Key="datasets/raw/a.jsonl", Body=b"rewritten by someone")
    applied = run(world, "apply", "--format", "json", str(world["plan"]))
    assert applied.code == 1
    report = json.loads(applied.out)
    # The server refuses it (412): on the pinned HEAD (no body, so the code is the status) or on the copy itself.
    assert [(f["kind"], f["code"] in ("PreconditionFailed", "412")) for f in report["failed"]] == [("move", True)]
    assert "changed since the plan" in report["failed"][0]["error"]
    assert [(s["kind"], s["blocked_by"]) for s in report["skipped"]] == [("delete", move["id"])]
    assert body(client, bucket, "datasets/raw/a.jsonl") == b"rewritten by someone"
    assert "datasets/raw/renamed.jsonl" not in keys(client, bucket)


def test_a_saved_delete_retargeted_outside_every_mapping_is_refused(world: dict[str, Any]) -> None:
    """The audit's repro: a delete hand-edited to an object under no mapping; specs unchanged, so the digest matches."""
    client, bucket = world["client"], world["bucket"]
    client.put_object(Bucket=bucket, Key="outside/keep.json", Body=b'{"owner": "not pixel"}')
    client.put_object(Bucket=bucket, Key="datasets/raw/stale.jsonl", Body=b"to prune")
    (world["root"] / "raw" / "new.jsonl").write_bytes(b"new\n")
    assert run(world, "plan", "-out", str(world["plan"])).code == 0
    untampered = world["plan"].read_text()
    before = keys(client, bucket)

    def tamper(etag: str | None) -> None:
        data = json.loads(untampered)
        delete = next(a for a in data["actions"] if a["kind"] == "delete")
        old_id, delete["id"], delete["key"] = delete["id"], "delete:s3:outside/keep.json", "outside/keep.json"
        delete["precondition"]["target_etag"] = etag
        data["edges"] = [[delete["id"] if i == old_id else i for i in edge] for edge in data["edges"]]
        world["plan"].write_text(json.dumps(data))

    tamper(None)  # as found in the audit: no precondition at all
    refused = run(world, "apply", str(world["plan"]))
    assert refused.code == 1, refused.out + refused.err
    assert (
        f"Error: {world['plan']}: saved plan is not applyable: delete s3:outside/keep.json has no expected ETag "
        "(precondition.target_etag); nothing was touched"
    ) in refused.err
    assert "Apply complete" not in refused.out and "Traceback" not in refused.err
    assert keys(client, bucket) == before  # nothing deleted, nothing uploaded, no lock object left

    # Even with the object's real ETag (a correct precondition), the target is not the mapping's to delete.
    tamper(client.head_object(Bucket=bucket, Key="outside/keep.json")["ETag"].strip('"'))
    refused = run(world, "apply", "--format", "json", str(world["plan"]))
    assert refused.code == 1, refused.out + refused.err
    report = json.loads(refused.out)
    assert report["status"] == "error"
    assert report["errors"] == [
        f"saved plan {world['plan']} is not applyable against the current specs; nothing was touched:\n"
        "  delete s3:outside/keep.json lies outside what mapping 'raw' manages (s3:datasets/raw/)\n"
        f"Run `pixel plan -out {world['plan']}` again, review it, then apply it"
    ]
    assert keys(client, bucket) == before
    assert body(client, bucket, "outside/keep.json") == b'{"owner": "not pixel"}'

    # The plan as pixel wrote it still applies, and only what it says.
    world["plan"].write_text(untampered)
    applied = run(world, "apply", str(world["plan"]))
    assert applied.code == 0, applied.out + applied.err
    assert "Apply complete! 2 done" in applied.out, applied.out
    after = keys(client, bucket)
    assert "datasets/raw/stale.jsonl" not in after and "datasets/raw/new.jsonl" in after
    assert body(client, bucket, "outside/keep.json") == b'{"owner": "not pixel"}'
