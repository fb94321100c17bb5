"""`--observe inventory` attacked: reports that do not say what their rows hold, pixel's own space, stale reports.

An S3 Inventory report is someone else's file, a day old at best: it must never make pixel read a column as
another, treat its bookkeeping as data, or delete what pixel itself saw or wrote after the report was made.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.dev.inventory_report import Row, render_report
from reconciler.dev.seaweed import SeaweedServer
from reconciler.observe.inventory import InventoryError, read_report
from reconciler.stores.memory import MemoryStore
from tests.hostile.data_helpers import keys, run
from tests.integration.pixelenv import Run, write_specs

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Bucket:
    """A bucket, a local root, specs whose S3 store reads its S3 Inventory reports, and the reports' bucket."""

    def __init__(self, tmp: Path, seaweed: SeaweedServer, bucket: str, reports: str, **mapping: object) -> None:
        self.bucket, self.reports = bucket, reports
        self.client = seaweed.client()
        self.root = tmp / "root"
        self.root.mkdir()
        self.specs = write_specs(
            tmp / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=self.root,
            mappings=[{"name": "data", **mapping}],
            s3_extra=("inventory:", f"  bucket: {reports}", "  prefix: inv"),
        )
        self.env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp / "cache"), "NO_COLOR": "1"}

    def pixel(self, *args: str) -> Run:
        return run([args[0], "--specs", str(self.specs), *args[1:]], self.env)

    def deliver_report(self, created: datetime) -> None:
        """An inventory of every object in the bucket now, pixel's own included (S3 Inventory lists them all)."""
        rows = [
            Row(obj["Key"], obj["Size"], obj["ETag"].strip('"'), obj["LastModified"])
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
            for obj in page.get("Contents", [])
        ]
        for key, body in render_report(self.bucket, self.reports, rows, created=created, prefix="inv").items():
            self.client.put_object(Bucket=self.reports, Key=key, Body=body)


@pytest.fixture
def reports(seaweed: SeaweedServer, bucket: str, request: pytest.FixtureRequest) -> str:
    name = seaweed.create_bucket(f"{bucket[:50]}-inv")
    request.addfinalizer(lambda: seaweed.delete_bucket(name))
    return name


def _planned(world: Bucket, *extra: str) -> list[dict[str, Any]]:
    result = world.pixel("plan", "--format", "json", *extra)
    assert result.code == 0, result.err
    return list(json.loads(result.out)["actions"])


def _report(rows: list[list[str]], schema: str, files: int = 1) -> MemoryStore:
    text = io.StringIO()
    csv.writer(text, quoting=csv.QUOTE_ALL).writerows(rows)
    body = gzip.compress(text.getvalue().encode())
    reports = MemoryStore("reports")
    listed = []
    for i in range(files):
        reports.put(f"inv/data/cfg/data/{i}.csv.gz", body)
        listed.append({"key": f"inv/data/cfg/data/{i}.csv.gz", "size": len(body),
                       "MD5checksum": hashlib.md5(body).hexdigest()})
    manifest = {"sourceBucket": "data", "destinationBucket": "arn:aws:s3:::reports", "version": "2016-11-30",
                "creationTimestamp": str(int(WHEN.timestamp() * 1000)), "fileFormat": "CSV",
                "fileSchema": schema, "files": listed}
    reports.put("inv/data/cfg/2026-11-30T12-00Z/manifest.json", json.dumps(manifest).encode())
    return reports


def test_a_file_schema_with_fewer_columns_than_the_rows_is_refused() -> None:
    md5 = hashlib.md5(b"x").hexdigest()
    # The configuration gained LastModifiedDate but the manifest's schema was not updated: read by the schema,
    # "ETag" would be the date and every object's md5 unknown (or, with other columns, another object's).
    rows = [["data", f"a/{i}", "1", "2026-11-30T10:00:00.000Z", md5] for i in (1, 2)]
    reports = _report(rows, "Bucket, Key, Size, ETag")
    with pytest.raises(InventoryError) as caught:
        read_report(reports, "inv/data/cfg/2026-11-30T12-00Z/manifest.json", expected_bucket="data")
    message = str(caught.value)
    assert "reports:inv/data/cfg/data/0.csv.gz" in message
    assert "row 1 has 5 columns, fileSchema names 4" in message


# A record of an upload in progress, a parked move and the lock: what pixel keeps in every bucket it applies to.
OWN = {".pixel/uploads/0123456789abcdef0123456789abcdef01234567.json": b'{"key": "x", "upload_id": "u"}',
       ".pixel/tmp/parked.jsonl": b"{}\n", ".pixel/lock": b'{"id": "someone"}'}


@pytest.mark.integration
def test_a_whole_bucket_pull_from_an_inventory_never_downloads_pixels_own_space(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, reports: str
) -> None:
    world = Bucket(tmp_path, seaweed, bucket, reports, **{"from": "disk:mirror", "to": "'s3:'", "authority": "s3"})
    world.client.put_object(Bucket=bucket, Key="set/a.jsonl", Body=b'{"a": 1}\n')
    for key, body in OWN.items():
        world.client.put_object(Bucket=bucket, Key=key, Body=body)
    world.deliver_report(datetime.now(UTC))
    world.client.delete_object(Bucket=bucket, Key=".pixel/lock")  # the report was made while an apply ran
    (world.root / "mirror").mkdir()

    listed = {a["id"] for a in _planned(world)}
    from_report = {a["id"] for a in _planned(world, "--observe", "inventory")}
    assert from_report == listed == {"download:disk:mirror/set/a.jsonl"}
    applied = world.pixel("apply", "--auto-approve", "--observe", "inventory")
    assert applied.code == 0, applied.err
    got = sorted(str(p.relative_to(world.root)) for p in world.root.rglob("*") if p.is_file())
    assert got == ["mirror/set/a.jsonl"]


@pytest.mark.integration
@pytest.mark.parametrize("local_copy", [False, True], ids=["pruned", "local-copy"])
def test_a_whole_bucket_pruned_push_never_plans_pixels_own_space(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, reports: str, local_copy: bool
) -> None:
    world = Bucket(tmp_path, seaweed, bucket, reports, **{"from": "disk:tree", "to": "'s3:'", "prune": True})
    (world.root / "tree" / "set").mkdir(parents=True)
    (world.root / "tree" / "set" / "a.jsonl").write_bytes(b'{"a": 1}\n')
    # Without a local copy the report's .pixel/ keys read as "only in S3": deletes of the lock and the records.
    # With one (an old pull, a restore), pushing it would write over them.
    for key, body in OWN.items() if local_copy else ():
        (world.root / "tree" / key).parent.mkdir(parents=True, exist_ok=True)
        (world.root / "tree" / key).write_bytes(body + b" (local)")
    world.client.put_object(Bucket=bucket, Key="set/a.jsonl", Body=b'{"a": 1}\n')
    for key, body in OWN.items():
        world.client.put_object(Bucket=bucket, Key=key, Body=body)
    world.deliver_report(datetime.now(UTC))

    assert _planned(world, "--observe", "inventory") == []
    assert _planned(world) == []  # a live listing (which leaves .pixel/ out of S3's side) agrees
    for key, body in OWN.items():
        assert world.client.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert keys(world.client, bucket) == {"set/a.jsonl": b'{"a": 1}\n'}


@pytest.mark.integration
def test_a_report_older_than_a_pull_never_deletes_what_the_pull_brought(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, reports: str
) -> None:
    world = Bucket(tmp_path, seaweed, bucket, reports,
                   **{"from": "disk:got", "to": "s3:pull/", "authority": "s3", "prune_local": True})
    (world.root / "got").mkdir()
    world.client.put_object(Bucket=bucket, Key="pull/a.jsonl", Body=b'{"a": 1}\n')
    world.deliver_report(datetime.now(UTC))
    # After the report: a new object, pulled by an ordinary apply; and a local file the bucket never held.
    world.client.put_object(Bucket=bucket, Key="pull/b.jsonl", Body=b'{"b": 2}\n')
    pulled = world.pixel("apply", "--auto-approve")
    assert pulled.code == 0, pulled.err
    assert (world.root / "got" / "b.jsonl").read_bytes() == b'{"b": 2}\n'
    (world.root / "got" / "c.jsonl").write_bytes(b'{"c": 3}\n')

    # The report lacks b and c; the bucket, asked, has b: only c, really gone from S3, is deleted.
    assert {a["id"] for a in _planned(world, "--observe", "inventory")} == {"delete:disk:got/c.jsonl"}
    applied = world.pixel("apply", "--auto-approve", "--observe", "inventory")
    assert applied.code == 0, applied.err
    assert sorted(p.name for p in (world.root / "got").iterdir()) == ["a.jsonl", "b.jsonl"]
    assert (world.root / "got" / "b.jsonl").read_bytes() == b'{"b": 2}\n'
    assert _planned(world, "--observe", "inventory") == []


def test_a_report_that_lists_no_data_files_is_not_an_empty_bucket() -> None:
    reports = _report([], "Bucket, Key, Size, ETag", files=0)
    with pytest.raises(InventoryError, match="lists no data files; an empty list is an incomplete report"):
        read_report(reports, "inv/data/cfg/2026-11-30T12-00Z/manifest.json", expected_bucket="data")
