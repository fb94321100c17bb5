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

import pytest

from reconciler.observe.inventory import InventoryError, read_report
from reconciler.stores.memory import MemoryStore

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


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
