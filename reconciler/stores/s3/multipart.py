"""One multipart path for uploads and server-side copies: journal, create, parts, complete, or abort."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from reconciler.stores.s3.errors import call
from reconciler.stores.s3.journal import Journal
from reconciler.stores.s3.objects import unquoted

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_PARTS = 10_000
# The parts as CompleteMultipartUpload lists them, and the extra parameters it takes (whole-object checksum).
Parts = tuple[list[dict[str, Any]], dict[str, str]]


def multipart(
    journal: Journal,
    client: S3Client,
    *,
    action: str,
    completing: str,
    key: str,
    where: str,
    create: dict[str, Any],
    send_parts: Callable[[str], Parts],
    conditions: dict[str, str],
) -> str:
    """Start a recorded upload of `key`, `send_parts(upload_id)`, complete it under `conditions`: its ETag.

    `action` names the create in errors, `completing` the complete; `where` is the key or the copy's keys.

    Whatever fails on the way (a part, the complete, an interrupt) aborts the upload; its record goes once
    the upload is completed or aborted, and stays (for the next apply) if the abort fails.
    """
    upload_id, record = journal.start(action, key, **create)
    try:
        parts, extra = send_parts(upload_id)
        done = call(
            completing,
            where,
            client.complete_multipart_upload,
            Bucket=journal.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": cast(Any, parts)},
            **extra,
            **conditions,
        )
    except BaseException:
        journal.abort_own(key, upload_id, record)
        raise
    journal.forget(record)
    return unquoted(done.get("ETag"))
