"""`pixel plan --observe inventory`: S3 Inventory reports (manifest.json + CSV.gz) written into SeaweedFS."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.dev.inventory_report import Row, render_report
from reconciler.dev.seaweed import SeaweedServer
from tests.integration.pixelenv import Run, pixel_in_process, write_specs

pytestmark = pytest.mark.integration


class World:
    def __init__(self, tmp: Path, seaweed: SeaweedServer, bucket: str, reports: str) -> None:
        self.seaweed, self.bucket, self.reports = seaweed, bucket, reports
        self.client = seaweed.client()
        self.root = tmp / "data"
        self.env = seaweed.env()
        self.specs = write_specs(
            tmp / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=self.root,
            mappings=[{"name": "set", "from": "disk:set", "to": "s3:set/", "prune": True}],
            s3_extra=("inventory:", f"  bucket: {reports}", "  prefix: inv/daily"),
        )

    def local(self, rel: str, body: bytes) -> None:
        path = self.root / "set" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    def pixel(self, *args: str) -> Run:
        return pixel_in_process([args[0], "--specs", str(self.specs), *args[1:]], self.env)

    def report(self, created: datetime | None = None) -> dict[str, bytes]:
        """An inventory of the bucket as it is now, delivered the way S3 Inventory delivers it."""
        rows = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                rows.append(Row(obj["Key"], obj["Size"], obj["ETag"].strip('"'), obj["LastModified"]))
        objects = render_report(self.bucket, self.reports, rows, created=created or datetime.now(UTC),
                                prefix="inv/daily", rows_per_file=3)
        for key, body in objects.items():
            self.client.put_object(Bucket=self.reports, Key=key, Body=body)
        return objects


@pytest.fixture
def world(tmp_path: Path, seaweed: SeaweedServer, bucket: str, request: pytest.FixtureRequest) -> World:
    reports = seaweed.create_bucket(f"{bucket[:50]}-inv")
    request.addfinalizer(lambda: seaweed.delete_bucket(reports))
    w = World(tmp_path, seaweed, bucket, reports)
    for i in range(8):
        w.local(f"d{i % 2}/f{i}.jsonl", f'{{"i": {i}}}\n'.encode())
    first = w.pixel("apply", "--auto-approve", "-q")
    assert first.code == 0, first.err
    # Then the world moves on: an edit, a new file, a file gone locally, an object only in S3.
    w.local("d0/f0.jsonl", b'{"i": "edited"}\n')
    w.local("d1/new.jsonl", b'{"new": true}\n')
    (w.root / "set" / "d1" / "f1.jsonl").unlink()
    w.client.put_object(Bucket=bucket, Key="set/d0/stray.jsonl", Body=b"{}\n")
    return w


def _actions(run: Run) -> list[dict[str, Any]]:
    assert run.code == 0, run.err
    return json.loads(run.out)["actions"]


def test_a_plan_from_the_inventory_equals_the_plan_from_listing(world: World) -> None:
    world.report(created=datetime.now(UTC) - timedelta(hours=5, minutes=3))
    listed = world.pixel("plan", "--format", "json")
    from_report = world.pixel("plan", "--format", "json", "--observe", "inventory")
    assert {a["kind"] for a in _actions(listed)} == {"upload", "delete"}
    assert json.loads(from_report.out) == json.loads(listed.out)
    assert "observing from an S3 Inventory report" in from_report.err
    assert "age='5h 3m'" in from_report.err or "age='5h 4m'" in from_report.err


def test_the_newest_report_is_read(world: World) -> None:
    world.report(created=datetime.now(UTC) - timedelta(days=2))
    world.client.put_object(Bucket=world.bucket, Key="set/d0/later.jsonl", Body=b"{}\n")
    world.report(created=datetime.now(UTC) - timedelta(hours=1))
    planned = _actions(world.pixel("plan", "--format", "json", "--observe", "inventory"))
    assert "delete:s3:set/d0/later.jsonl" in {a["id"] for a in planned}


def test_an_object_changed_after_the_report_fails_with_412_and_the_rest_applies(world: World, tmp_path: Path) -> None:
    world.report()
    # After the report: the object the edit would overwrite changes, and the new file's key appears.
    world.client.put_object(Bucket=world.bucket, Key="set/d0/f0.jsonl", Body=b'{"i": "someone else"}\n')
    world.client.put_object(Bucket=world.bucket, Key="set/d1/new.jsonl", Body=b'{"other": 1}\n')
    saved = tmp_path / "plan.json"
    planned = world.pixel("plan", "--observe", "inventory", "-out", str(saved))
    assert planned.code == 0, planned.err
    run = world.pixel("apply", str(saved), "--format", "json")
    assert run.code == 1
    report = json.loads(run.out)
    # HTTP 412: the If-Match / If-None-Match the plan's actions carry, enforced by the server.
    assert sorted((f["key"], f["code"]) for f in report["failed"]) == [
        ("set/d0/f0.jsonl", "PreconditionFailed"), ("set/d1/new.jsonl", "PreconditionFailed")
    ], report["failed"]
    assert {d["key"] for d in report["done"]} == {"set/d1/f1.jsonl", "set/d0/stray.jsonl"}
    # Never clobbered: the other writers' bytes are still there.
    body = world.client.get_object(Bucket=world.bucket, Key="set/d0/f0.jsonl")["Body"].read()
    assert body == b'{"i": "someone else"}\n'


def test_relisted_prefixes_are_read_live(world: World) -> None:
    world.report()
    world.client.put_object(Bucket=world.bucket, Key="set/d1/new.jsonl", Body=b'{"new": true}\n')
    stale = {a["id"] for a in _actions(world.pixel("plan", "--format", "json", "--observe", "inventory"))}
    live = {a["id"] for a in _actions(world.pixel(
        "plan", "--format", "json", "--observe", "inventory", "--relist-prefix", "set/d1/"))}
    assert "upload:s3:set/d1/new.jsonl" in stale
    assert "upload:s3:set/d1/new.jsonl" not in live
    assert live == {a["id"] for a in _actions(world.pixel("plan", "--format", "json"))}


def test_a_missing_or_corrupt_report_is_one_clear_error(world: World) -> None:
    missing = world.pixel("plan", "--observe", "inventory")
    assert missing.code == 1
    assert f"no S3 Inventory report (manifest.json) under s3 (inventory):inv/daily/{world.bucket}/" in missing.err

    objects = world.report()
    data = next(k for k in objects if k.endswith(".csv.gz"))
    world.client.put_object(Bucket=world.reports, Key=data, Body=objects[data][:-7])
    torn = world.pixel("plan", "--observe", "inventory")
    assert torn.code == 1
    assert f"{data}: the data file's md5 is not the manifest's MD5checksum" in torn.err

    manifest = next(k for k in objects if k.endswith("manifest.json"))
    broken = json.loads(objects[manifest])
    broken["files"][0]["MD5checksum"] = ""
    world.client.put_object(Bucket=world.reports, Key=manifest, Body=json.dumps(broken).encode())
    not_gzip = world.pixel("plan", "--observe", "inventory")
    assert not_gzip.code == 1 and "not a gzip-compressed UTF-8 CSV file" in not_gzip.err

    del broken["fileSchema"]
    world.client.put_object(Bucket=world.reports, Key=manifest, Body=json.dumps(broken).encode())
    no_schema = world.pixel("plan", "--observe", "inventory")
    assert no_schema.code == 1 and "manifest.json has no 'fileSchema' field" in no_schema.err

    world.client.put_object(Bucket=world.reports, Key=manifest, Body=b"{not json")
    assert "manifest.json is not JSON" in world.pixel("plan", "--observe", "inventory").err
    assert gzip.decompress(objects[data])  # the helper's own file was fine before it was torn


def test_a_streamed_plan_merges_the_report_and_refuses_a_data_file_out_of_key_order(
    world: World, tmp_path: Path
) -> None:
    objects = world.report()
    env = {**world.env, "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    args = ["plan", "--specs", str(world.specs), "--observe", "inventory", "--max-delete", "9", "--allow-mass-delete"]
    streamed, in_memory = tmp_path / "streamed.json", tmp_path / "memory.json"
    assert pixel_in_process([*args, "--scale", "stream", "-out", str(streamed)], env).code == 0
    assert pixel_in_process([*args, "-out", str(in_memory)], env).code == 0
    assert streamed.read_bytes() == in_memory.read_bytes()

    # One data file's rows reversed (and the manifest's md5 made to match): a merge of it would misplace keys.
    data = next(k for k, body in objects.items() if k.endswith(".csv.gz") and gzip.decompress(body).count(b"\n") > 1)
    lines = gzip.decompress(objects[data]).decode().splitlines(keepends=True)[::-1]
    body = gzip.compress("".join(lines).encode())
    manifest = next(k for k in objects if k.endswith("manifest.json"))
    named = json.loads(objects[manifest])
    for item in named["files"]:
        if item["key"] == data:
            item["MD5checksum"] = hashlib.md5(body).hexdigest()
    world.client.put_object(Bucket=world.reports, Key=data, Body=body)
    world.client.put_object(Bucket=world.reports, Key=manifest, Body=json.dumps(named).encode())
    first, second = (next(csv.reader([line]))[1] for line in lines[:2])
    refused = pixel_in_process([*args, "--scale", "stream"], env)
    assert refused.code == 1
    assert f"{data}: the data file is not sorted by key: '{second}' comes after '{first}'" in refused.err
    assert pixel_in_process(args, env).code == 0, "in memory the report is sorted whole: the same file reads there"
    # The report's local copies lived in the spill's directory and went with it.
    assert list((tmp_path / "cache" / "spill").iterdir()) == []
