"""What an object's listing row or HEAD response says: its md5 (where it says one) and its Entry."""

from __future__ import annotations

import base64
import re
from typing import Any

from reconciler.model import Entry

MD5_META = "md5"  # sent as x-amz-meta-md5
RCLONE_MD5_META = "md5chksum"  # rclone's: base64 of the raw digest
_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")
KMS_ALGORITHMS = frozenset({"aws:kms", "aws:kms:dsse"})
_KEPT_HEADERS = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl")


def unquoted(etag: Any) -> str:
    return str(etag or "").strip('"')


def md5_from_etag(etag: str | None) -> str | None:
    """A single-part ETag is the body's md5; a multipart one (`…-N`) is not."""
    if etag is None:
        return None
    etag = etag.strip('"').lower()
    return etag if _MD5_HEX.match(etag) else None


def md5_from_metadata(metadata: dict[str, str]) -> str | None:
    value = metadata.get(MD5_META, "").lower()
    if _MD5_HEX.match(value):
        return value
    rclone = metadata.get(RCLONE_MD5_META)
    if rclone:
        try:
            raw = base64.b64decode(rclone, validate=True)
        except ValueError:
            return None
        if len(raw) == 16:
            return raw.hex()
    return None


def etag_md5_of_head(head: Any) -> str | None:
    """The md5 a HEAD's ETag is: never for SSE-KMS or SSE-C objects, whose ETags only look like one."""
    if head.get("ServerSideEncryption") in KMS_ALGORITHMS or head.get("SSECustomerAlgorithm"):
        return None
    return md5_from_etag(str(head.get("ETag", "")))


def mtime_ns(modified: Any) -> int | None:
    return int(modified.timestamp() * 1e9) if modified else None


def entry_of_head(key: str, head: Any) -> tuple[Entry, str | None, str | None]:
    """(entry, md5 in metadata, md5 the ETag is): the entry's md5 is the first of the two there is."""
    meta_md5, etag_md5 = md5_from_metadata(head.get("Metadata", {})), etag_md5_of_head(head)
    entry = Entry(
        key=key,
        size=int(head.get("ContentLength", 0)),
        md5=meta_md5 or etag_md5,
        mtime_ns=mtime_ns(head.get("LastModified")),
        etag=unquoted(head.get("ETag")),
    )
    return entry, meta_md5, etag_md5


def kept_headers(head: Any, md5: str | None) -> dict[str, Any]:
    """A copy's metadata and content headers: the source's, plus the md5 pixel records."""
    metadata = dict(head.get("Metadata", {}))
    if md5 is not None:
        metadata[MD5_META] = md5
    kept: dict[str, Any] = {name: head[name] for name in _KEPT_HEADERS if head.get(name)}
    return {"Metadata": metadata, **kept}
