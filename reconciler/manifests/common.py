"""What every generated file shares: one byte-stable JSON form, S3 URLs, timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from reconciler.model import S3StoreSpec

MIB = 1024 * 1024


def dumps(document: object) -> bytes:
    """Sorted keys, two-space indent, trailing newline: equal documents are equal bytes."""
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def size_mb(size: int) -> float:
    return round(size / MIB, 2)


def iso_from_ns(ns: int) -> str:
    """UTC without an offset, microseconds, as the seed manifests write it: 2025-10-17T15:57:00.000000."""
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


def iso_ms_from_ns(ns: int) -> str:
    """UTC with milliseconds and Z, as seed 004's API writes it: 2025-10-17T14:08:00.000Z."""
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{rest // 1_000_000:03d}Z"


def timestamp_from_ns(ns: int) -> float:
    return round(ns / 1e9, 6)


def s3_uri(spec: S3StoreSpec, key: str) -> str:
    return f"s3://{spec.bucket}/{key}"


def s3_url(spec: S3StoreSpec, key: str) -> str:
    """The object's https URL: virtual-hosted on AWS (the seed's form), path-style on a custom endpoint."""
    path = quote(key, safe="/")
    if spec.endpoint:
        base = spec.endpoint.rstrip("/")
        if spec.addressing_style == "virtual":
            scheme, _, host = base.partition("://")
            return f"{scheme}://{spec.bucket}.{host}/{path}"
        return f"{base}/{spec.bucket}/{path}"
    region = spec.region or "us-east-1"
    return f"https://{spec.bucket}.s3.{region}.amazonaws.com/{path}"


def previous_document(previous: bytes | None) -> dict[str, Any] | None:
    """A generated file as it is on disk, when it is a JSON object; None when absent, or hand-broken into something
    else (then it is regenerated from scratch)."""
    if previous is None:
        return None
    try:
        document = json.loads(previous)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
