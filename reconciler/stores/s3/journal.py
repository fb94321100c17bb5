"""The records of the multipart uploads pixel has in progress, under `.pixel/uploads/` in the bucket.

Every multipart upload pixel starts is recorded for as long as it is in progress: a later apply
(another machine, after `kill -9`) aborts exactly those and never another tool's upload. The record
names the apply that started it: the journal is built with that apply's lock id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import secrets
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reconciler.stores.base import PermanentStoreError
from reconciler.stores.s3.errors import is_missing, no_such_upload
from reconciler.stores.s3.transport import Transport, list_params, sent

# One small JSON record per multipart upload pixel has in progress: what lets a later apply
# abort its own leftovers, and only those. Never listed as data, never pruned (keys under .pixel/).
UPLOAD_JOURNAL_PREFIX = ".pixel/uploads/"
# An intent's upload is created right after its record: only an upload of that key initiated in this
# window after the record (server clock both) can be the one a killed apply started.
INTENT_WINDOW_S = 120
CLOCK_SLACK_S = 1  # LastModified and Initiated are whole seconds on some servers (SeaweedFS)


@dataclasses.dataclass(frozen=True, slots=True)
class JournaledUpload:
    """A multipart upload pixel started, as its record in `.pixel/uploads/` describes it.

    The record is written before CreateMultipartUpload (an intent: no upload id yet) and rewritten with
    the id once the server gave one; no part goes up before that. A record without an id is what a
    process killed between the two leaves behind.
    """

    record: str  # the record's own key
    key: str = ""
    upload_id: str = ""  # "" for an intent whose CreateMultipartUpload may or may not have happened
    started: str = ""
    apply_id: str | None = None  # the lock id of the apply that started it
    host: str = ""
    problem: str = ""  # set when the record cannot be read as one of pixel's: it is then left alone
    recorded_at: datetime | None = None  # the record's LastModified: the server's clock, as Initiated is


def journal_key(key: str, name: str) -> str:
    """Where a record of `key` lives, `name` being its intent token: fixed length, whatever the key."""
    digest = hashlib.sha256(f"{key}\n{name}".encode()).hexdigest()[:40]
    return f"{UPLOAD_JOURNAL_PREFIX}{digest}.json"


def parse_journal(record: str, raw: bytes, recorded_at: datetime | None = None) -> JournaledUpload:
    try:
        data = json.loads(raw)
        key, upload_id, intent = data["key"], data.get("upload_id") or "", data.get("intent") or ""
        if not isinstance(key, str) or not key or not isinstance(upload_id, str) or not isinstance(intent, str):
            raise ValueError("key must be a non-empty string, upload_id and intent strings")
        # Named by the intent token; records written before intents existed are named by the upload id.
        if record not in {journal_key(key, n) for n in (intent, upload_id) if n}:
            raise ValueError("its key and intent (or upload_id) do not match the record's name")
    except (ValueError, KeyError, TypeError) as exc:
        return JournaledUpload(record, problem=f"not a pixel upload record ({exc})")
    apply_id = data.get("apply_id")
    return JournaledUpload(
        record,
        key=key,
        upload_id=upload_id,
        started=str(data.get("started", "")),
        apply_id=str(apply_id) if apply_id else None,
        host=str(data.get("host", "")),
        recorded_at=recorded_at,
    )


@dataclasses.dataclass(frozen=True)
class Journal:
    """The records of one bucket, written on behalf of the apply `apply_id` (None outside an apply), through
    the store's transport: on the direct one, the journal never needs botocore."""

    transport: Transport
    apply_id: str | None = None

    @property
    def bucket(self) -> str:
        return self.transport.bucket

    def start(self, action: str, key: str, **kwargs: Any) -> tuple[str, str]:
        """Intent record, CreateMultipartUpload, record with the id: (upload id, record key).

        The record goes first so that no upload ever exists unrecorded: a process killed right after the
        create leaves an intent the next apply resolves (`abort`). No part goes up before the record holds
        the id.
        """
        intent = secrets.token_hex(8)
        record = journal_key(key, intent)
        body: dict[str, Any] = {
            "tool": "pixel",
            "bucket": self.bucket,
            "key": key,
            "intent": intent,
            "upload_id": "",
            "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "apply_id": self.apply_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        self._put(record, body)
        transport = self.transport
        # A failed create keeps its intent: the request may have reached the server; the next apply looks.
        upload_id = sent(transport, action, key, transport.create_multipart_upload, key, kwargs)
        try:
            self._put(record, {**body, "upload_id": upload_id})
        except BaseException:
            # Its intent cannot name it: never leave it running.
            with contextlib.suppress(Exception):
                transport.abort_multipart_upload(key, upload_id)
                self.forget(record)
            raise
        return upload_id, record

    def _put(self, record: str, body: dict[str, Any]) -> None:
        data = (json.dumps(body, indent=2) + "\n").encode()
        transport = self.transport
        sent(transport, "record upload", record, transport.put_object, record, data, len(data),
             {"ContentType": "application/json"})

    def forget(self, record: str) -> None:
        """Drop an upload's record once it is completed or aborted. A record left behind is harmless:
        the next apply finds the upload gone and removes the record then."""
        with contextlib.suppress(Exception):
            self.transport.delete_object(record, {})

    def abort_own(self, key: str, upload_id: str, record: str) -> None:
        """Abort an upload this process started; its record goes only once the abort is done."""
        try:
            self.transport.abort_multipart_upload(key, upload_id)
        except Exception as exc:
            if not no_such_upload(exc):
                return  # kept: the next apply aborts it from its record
        self.forget(record)

    def uploads(self) -> tuple[JournaledUpload, ...]:
        """The multipart uploads pixel recorded in this bucket and has not finished."""
        transport = self.transport
        found: tuple[JournaledUpload, ...] = ()
        token: str | None = None
        while True:
            ask = functools.partial(transport.list_page, UPLOAD_JOURNAL_PREFIX, list_params(token=token))
            page = sent(transport, "list upload records", UPLOAD_JOURNAL_PREFIX, ask)
            for obj in page.get("Contents", []):
                record = obj["Key"]
                read = sent(transport, "list upload records", record, self._read, record)
                if read is not None:  # else finished and removed since the listing
                    found += (parse_journal(record, read, obj.get("LastModified")),)
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return found

    def _read(self, record: str) -> bytes | None:
        try:
            download = self.transport.get_object(record, {})
        except Exception as exc:
            if is_missing(exc):
                return None
            raise
        try:
            return download.body.read()
        finally:
            download.body.close()

    def _still_running(self, key: str, what: str, request: Callable[[], Any]) -> bool:
        """`request` on the upload: False when it is no longer in progress."""
        try:
            request()
        except Exception as exc:
            if not no_such_upload(exc):
                raise self.transport.translate(exc, key=key, action=what) from exc
            return False
        return True

    def abort(self, upload: JournaledUpload) -> bool:
        """Abort a recorded upload and remove its record. False when it was no longer in progress
        (completed or aborted before its record could be removed): then only the record goes."""
        if upload.problem:
            raise PermanentStoreError(f"{upload.record}: {upload.problem}", key=upload.record)
        transport = self.transport
        upload_id = upload.upload_id or self._intended_upload(upload)
        in_progress = bool(upload_id) and self._still_running(
            upload.key, "look up upload", lambda: transport.has_parts(upload.key, upload_id)
        )
        in_progress = in_progress and self._still_running(
            upload.key, "abort upload", lambda: transport.abort_multipart_upload(upload.key, upload_id)
        )
        sent(transport, "delete upload record", upload.record, transport.delete_object, upload.record, {})
        return in_progress

    def _intended_upload(self, upload: JournaledUpload) -> str:
        """The upload id an intent record (killed before it got its id) refers to, or "" when there is none.

        ListMultipartUploads shows no metadata, so the upload is recognised by what only it can be: the
        record's key, initiated within INTENT_WINDOW_S after the record was written (server clock), and no
        part uploaded (pixel uploads none before the id is recorded). Two candidates cannot be told apart:
        both are left alone, and so is the record (the error says so).
        """
        if upload.recorded_at is None:
            raise PermanentStoreError(f"{upload.record}: no record time to match its upload by", key=upload.record)
        earliest = upload.recorded_at.timestamp() - CLOCK_SLACK_S
        latest = upload.recorded_at.timestamp() + INTENT_WINDOW_S
        transport = self.transport
        candidates: list[str] = []
        for item in sent(transport, "list uploads", upload.key, transport.multipart_uploads, upload.key):
            initiated = item.get("Initiated")
            if item.get("Key") != upload.key or initiated is None:
                continue
            if not earliest <= initiated.timestamp() <= latest:
                continue
            if not sent(transport, "list uploads", upload.key, transport.has_parts, upload.key, item["UploadId"]):
                candidates.append(str(item["UploadId"]))
        if len(candidates) > 1:
            raise PermanentStoreError(
                f"{upload.record}: {len(candidates)} part-less uploads of {upload.key} started right after this "
                "intent record; pixel cannot tell which is its own, so it aborts none",
                key=upload.key,
            )
        return candidates[0] if candidates else ""
