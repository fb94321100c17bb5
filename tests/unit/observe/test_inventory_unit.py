"""Reading S3 Inventory reports (the documented manifest.json + CSV.gz) into the entries a listing gives."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.dev.inventory_report import Row, render_report
from reconciler.observe.inventory import InventoryError, InventoryListing, newest_manifest, read_report
from reconciler.stores.memory import MemoryStore

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _deliver(store: MemoryStore, objects: dict[str, bytes]) -> str:
    for key, body in objects.items():
        store.put(key, body)
    return next(k for k in objects if k.endswith("manifest.json"))


def _report_of(live: MemoryStore, reports: MemoryStore, created: datetime = WHEN) -> str:
    rows = [Row(e.key, e.size, e.etag or "", WHEN) for e in live.list("")]
    return _deliver(reports, render_report("data", "reports", rows, created=created, rows_per_file=2))


@settings(max_examples=40, deadline=None)
@given(
    keys=st.sets(st.text(st.sampled_from("ab/ +%é.x"), min_size=1, max_size=8).filter(lambda k: not k.endswith("/")),
                 max_size=12),
    prefix=st.sampled_from(["", "a", "a/", "b/", "x"]),
)
def test_a_report_lists_what_the_bucket_lists(keys: set[str], prefix: str) -> None:
    live, reports = MemoryStore("s3"), MemoryStore("reports")
    for key in keys:
        live.put(key, key.encode())
    report = read_report(reports, _report_of(live, reports), expected_bucket="data")
    view = InventoryListing(live, report)
    got = sorted((e.key, e.size, e.md5, e.etag) for e in view.list(prefix))
    assert got == sorted((e.key, e.size, e.md5, e.etag) for e in live.list(prefix))


def test_relisted_prefixes_come_from_the_live_store() -> None:
    live, reports = MemoryStore("s3"), MemoryStore("reports")
    for key in ("a/1", "a/2", "b/1"):
        live.put(key, b"old")
    report = read_report(reports, _report_of(live, reports), expected_bucket="data")
    live.put("a/3", b"new")
    live.put("b/2", b"new")
    view = InventoryListing(live, report, relist=["a/"])
    assert sorted(e.key for e in view.list("")) == ["a/1", "a/2", "a/3", "b/1"]
    assert sorted(e.key for e in view.list("a/")) == ["a/1", "a/2", "a/3"]
    assert [e.key for e in view.list("b/")] == ["b/1"]  # b/2 came after the report: not seen


def test_multipart_objects_get_their_recorded_md5_from_a_head() -> None:
    live, reports = MemoryStore("s3"), MemoryStore("reports")
    live.put("big", b"parts", foreign=True)
    report = read_report(reports, _report_of(live, reports), expected_bucket="data")
    assert report.entries[0].md5 is None  # "…-2" is not an md5
    # pixel recorded it since (a rehash): the HEAD tells, as it does for a listing.
    live.copy("big", "big", md5=hashlib.md5(b"parts").hexdigest())
    (entry,) = InventoryListing(live, report).list("")
    assert entry.md5 is None, "the ETag moved since the report: left unknown, the precondition decides"


def _manifest(files: list[dict[str, object]], schema: str, fmt: str = "CSV") -> bytes:
    return json.dumps({"sourceBucket": "data", "destinationBucket": "arn:aws:s3:::reports", "version": "2016-11-30",
                       "creationTimestamp": str(int(WHEN.timestamp() * 1000)), "fileFormat": fmt,
                       "fileSchema": schema, "files": files}).encode()


def _csv(rows: list[list[str]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, quoting=csv.QUOTE_ALL).writerows(rows)
    return gzip.compress(text.getvalue().encode())


def test_versions_delete_markers_kms_and_encoded_keys_read_as_a_listing_would() -> None:
    md5 = hashlib.md5(b"x").hexdigest()
    body = _csv([
        ["data", "dir%2Fmy+file.txt", "", "true", "false", "1", "2026-11-30T10:00:00.000Z", md5, "NOT-SSE"],
        ["data", "dir/old", "v1", "false", "false", "1", "2026-11-29T10:00:00.000Z", md5, "NOT-SSE"],
        ["data", "dir/gone", "v2", "true", "true", "", "2026-11-29T10:00:00.000Z", "", ""],
        ["data", "dir/kms", "", "true", "false", "1", "2026-11-30T10:00:00.000Z", md5, "SSE-KMS"],
    ])
    reports = MemoryStore("reports")
    reports.put("inv/data/cfg/data/1.csv.gz", body)
    schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, EncryptionStatus"
    files = [{"key": "inv/data/cfg/data/1.csv.gz", "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()}]
    reports.put("inv/data/cfg/2026-11-30T12-00Z/manifest.json", _manifest(files, schema))
    report = read_report(reports, newest_manifest(reports, "inv", "data"), expected_bucket="data")
    assert [(e.key, e.md5) for e in report.entries] == [("dir/kms", None), ("dir/my file.txt", md5)]
    assert report.created == WHEN
    assert report.age(datetime(2026, 12, 1, 15, 30, tzinfo=UTC)) == "1d 3h 30m"


def test_the_newest_of_several_reports_is_chosen() -> None:
    reports = MemoryStore("reports")
    for stamp in ("2026-11-28T00-00Z", "2026-11-30T00-00Z", "2026-11-29T00-00Z"):
        reports.put(f"p/data/cfg/{stamp}/manifest.json", b"{}")
    reports.put("p/data/cfg/hive/dt=2026-12-01-00-00/symlink.txt", b"")
    assert newest_manifest(reports, "p", "data") == "p/data/cfg/2026-11-30T00-00Z/manifest.json"


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (_manifest([], "Bucket, Key, Size, ETag", fmt="Parquet"), "pixel reads CSV inventory reports"),
        (_manifest([], "Bucket, Key, Size"), "fileSchema lacks the column(s) ETag"),
        (json.dumps({"sourceBucket": "other"}).encode(), "the report is for bucket 'other', not 'data'"),
        (b"[1, 2]", "manifest.json is not a JSON object"),
        (_manifest([{"key": "absent.csv.gz"}], "Bucket, Key, Size, ETag"), "cannot read the S3 Inventory data file"),
    ],
)
def test_bad_reports_are_one_clear_error(manifest: bytes, message: str) -> None:
    reports = MemoryStore("reports")
    reports.put("m/manifest.json", manifest)
    with pytest.raises(InventoryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_report(reports, "m/manifest.json", expected_bucket="data")
