"""Render an S3 Inventory report (manifest.json + gzip CSV), as AWS delivers it, for tests and benchmarks.

The layout and fields follow the AWS documentation of S3 Inventory: data files
under `{prefix}/{bucket}/{config}/data/`, the manifest under
`{prefix}/{bucket}/{config}/{YYYY-MM-DDTHH-MMZ}/manifest.json` with sourceBucket,
destinationBucket, version, creationTimestamp, fileFormat, fileSchema and files.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote_plus

SCHEMA = ("Bucket", "Key", "Size", "LastModifiedDate", "ETag", "StorageClass", "IsMultipartUploaded")


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    size: int
    etag: str  # without quotes
    last_modified: datetime


def render_report(
    source_bucket: str,
    destination_bucket: str,
    rows: Iterable[Row],
    *,
    created: datetime,
    prefix: str = "inventory",
    config_id: str = "pixel",
    rows_per_file: int = 250_000,
) -> dict[str, bytes]:
    """Every object of one report: key -> body (data files first, the manifest last, as S3 delivers them)."""
    base = f"{prefix.strip('/')}/{source_bucket}/{config_id}" if prefix.strip("/") else f"{source_bucket}/{config_id}"
    objects: dict[str, bytes] = {}
    files = []
    chunk: list[Row] = []

    def flush() -> None:
        text = io.StringIO()
        writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for row in chunk:
            stamp = row.last_modified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
                f"{row.last_modified.microsecond // 1000:03d}Z"
            )
            multipart = "true" if "-" in row.etag else "false"
            writer.writerow(
                [source_bucket, quote_plus(row.key, safe="/"), row.size, stamp, row.etag, "STANDARD", multipart]
            )
        body = gzip.compress(text.getvalue().encode(), compresslevel=1)
        key = f"{base}/data/{uuid.uuid4()}.csv.gz"
        objects[key] = body
        files.append({"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
        chunk.clear()

    for row in rows:
        chunk.append(row)
        if len(chunk) >= rows_per_file:
            flush()
    if chunk or not files:
        flush()
    manifest = {
        "sourceBucket": source_bucket,
        "destinationBucket": f"arn:aws:s3:::{destination_bucket}",
        "version": "2016-11-30",
        "creationTimestamp": str(int(created.timestamp() * 1000)),
        "fileFormat": "CSV",
        "fileSchema": ", ".join(SCHEMA),
        "files": files,
    }
    body = json.dumps(manifest, indent=2).encode()
    folder = created.astimezone(UTC).strftime("%Y-%m-%dT%H-%MZ")
    objects[f"{base}/{folder}/manifest.json"] = body
    objects[f"{base}/{folder}/manifest.checksum"] = hashlib.md5(body).hexdigest().encode()
    return objects
