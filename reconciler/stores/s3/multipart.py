"""One multipart path for uploads and server-side copies: journal, create, parts, complete, or abort."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler.stores.s3.conditions import conditions
from reconciler.stores.s3.journal import Journal
from reconciler.stores.s3.objects import kept_headers, unquoted
from reconciler.stores.s3.transport import Head, sent

MAX_PARTS = 10_000
# The parts as CompleteMultipartUpload lists them, and the extra parameters it takes (whole-object checksum).
Parts = tuple[list[dict[str, Any]], dict[str, str]]


def multipart(
    journal: Journal,
    *,
    action: str,
    completing: str,
    key: str,
    where: str,
    create: dict[str, Any],
    send_parts: Callable[[str, float], Parts],
    conditions: dict[str, str],
) -> str:
    """Start a recorded upload of `key`, `send_parts(upload_id, round trip)`, complete it under `conditions`:
    its ETag.

    `action` names the create in errors, `completing` the complete; `where` is the key or the copy's keys.
    The round trip (seconds) is what the start took over its two requests (create, then the record), each
    one bodiless or near it: how far the server is, for sizing the parts in flight to the link.

    Whatever fails on the way (a part, the complete, an interrupt) aborts the upload; its record goes once
    the upload is completed or aborted, and stays (for the next apply) if the abort fails.
    """
    transport = journal.transport
    started = time.monotonic()
    upload_id, record = journal.start(action, key, **create)
    round_trip = (time.monotonic() - started) / 2
    try:
        parts, extra = send_parts(upload_id, round_trip)
        etag = sent(
            transport, completing, where, transport.complete_multipart_upload, key, upload_id, parts,
            {**extra, **conditions},
        )
    except BaseException:
        journal.abort_own(key, upload_id, record)
        raise
    journal.forget(record)
    return unquoted(etag)


def copy_by_parts(
    journal: Journal, src_key: str, dst_key: str, head: Head, *, md5: str | None, src_etag: str | None,
    when: dict[str, str], part_size: int, concurrency: int,
) -> tuple[str, int]:
    """Server-side copy in ranged parts, for sources over CopyObject's 5 GiB limit: (ETag, size). No byte
    comes here. `head` is the source's, pinned to `src_etag` when the plan gave one."""
    transport = journal.transport
    where = f"{src_key} => {dst_key}"
    size = int(head.get("ContentLength", 0))
    # Every part reads the version the HEAD saw, or the copy fails with 412.
    pin = conditions(src_etag=src_etag or unquoted(head.get("ETag")))
    part_size = max(part_size, -(-size // MAX_PARTS))
    ranges = [(n, start, min(start + part_size, size) - 1) for n, start in enumerate(range(0, size, part_size), 1)]

    def send_parts(upload_id: str, _: float) -> Parts:  # no byte crosses this link: the server copies
        def one(part: tuple[int, int, int]) -> dict[str, Any]:
            number, first, last = part
            etag = sent(
                transport, "copy part", where, transport.upload_part_copy, src_key, dst_key, upload_id, number,
                first, last, pin,
            )
            return {"ETag": etag, "PartNumber": number}

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="pixel-copy") as pool:
            return list(pool.map(one, ranges)), {}

    etag = multipart(
        journal, action="copy", completing="copy", key=dst_key, where=where, create=kept_headers(head, md5),
        send_parts=send_parts, conditions=when,
    )
    return etag, size
