"""An S3 bucket as a Store. The only module that imports boto3.

Change detection needs each object's md5. The listing gives it for free when
the ETag is a plain md5 (single-part upload, no SSE-KMS); otherwise the md5
pixel recorded in metadata is read with one HEAD, and failing that the entry
carries md5=None so the planner can schedule a rehash.

Every multipart upload pixel starts is recorded in the bucket, under
`.pixel/uploads/`, for as long as it is in progress: a later apply (another
machine, after `kill -9`) aborts exactly those and never another tool's
upload. `list()` never shows these records.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import secrets
import socket
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from reconciler.model import Entry, S3StoreSpec
from reconciler.stores import s3_listing
from reconciler.stores.base import (
    ObjectChanged,
    OpenSource,
    PermanentStoreError,
    StoreError,
    TransientStoreError,
)
from reconciler.stores.http_pool import NETWORK_ERRORS
from reconciler.stores.lazy import lazy
from reconciler.stores.s3_credentials import env_credentials
from reconciler.stores.s3_raw import RawS3, direct, through_botocore

if TYPE_CHECKING:
    import boto3
    import botocore.exceptions
    import botocore.session
    from mypy_boto3_s3 import S3Client
else:
    # Imported when first used: a warm no-op plan over the direct path (s3_raw.direct) never does.
    boto3 = lazy("boto3")
    botocore = lazy("botocore")

MD5_META = "md5"  # sent as x-amz-meta-md5
RCLONE_MD5_META = "md5chksum"  # rclone's: base64 of the raw digest
_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")
MIB = 1024 * 1024
MAX_PARTS = 10_000
# Bodies up to this size are read into memory and sent in one go (at most parallelism x 1 MiB in flight).
SMALL_BODY = 1 * MIB
KMS_ALGORITHMS = frozenset({"aws:kms", "aws:kms:dsse"})
# One small JSON record per multipart upload pixel has in progress: what lets a later apply
# abort its own leftovers, and only those. Never listed as data, never pruned (keys under .pixel/).
UPLOAD_JOURNAL_PREFIX = ".pixel/uploads/"

TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
        "502",
        "504",
    }
)
CHANGED_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})



def _network_errors() -> tuple[type[Exception], ...]:
    return (
        botocore.exceptions.ConnectionError,
        botocore.exceptions.HTTPClientError,
        botocore.exceptions.ReadTimeoutError,
        botocore.exceptions.ResponseStreamingError,
        botocore.exceptions.IncompleteReadError,
    )


def crc64nvme(data: bytes, previous: int = 0) -> int:
    from awscrt.checksums import crc64nvme as crc  # awscrt's import alone costs a no-op plan 0.1 s

    return int(crc(data, previous))


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


def _etag_md5_of_head(head: Any) -> str | None:
    """The md5 a HEAD's ETag is: never for SSE-KMS or SSE-C objects, whose ETags only look like one."""
    if head.get("ServerSideEncryption") in KMS_ALGORITHMS or head.get("SSECustomerAlgorithm"):
        return None
    return md5_from_etag(str(head.get("ETag", "")))


def translate(exc: Exception, *, key: str, action: str) -> StoreError:
    """Turn a botocore failure into a StoreError the executor can classify."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = str(err.get("Message", "")) or code
        text = f"{action} {key}: {code or status} {message}".strip()
        if code in CHANGED_CODES or status == 412:
            return ObjectChanged(
                f"{action} {key}: the object changed since the plan was made (412 {code}); re-run pixel plan",
                code=code or "412",
                key=key,
            )
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientStoreError(text, code=code or str(status), key=key)
        return PermanentStoreError(text, code=code or str(status), key=key)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return PermanentStoreError(
            f"{action} {key}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)",
            code="NoCredentials",
            key=key,
        )
    if isinstance(exc, _network_errors()):
        return TransientStoreError(f"{action} {key}: {type(exc).__name__}: {exc}", code="Network", key=key)
    if isinstance(exc, StoreError):
        return exc
    return PermanentStoreError(f"{action} {key}: {type(exc).__name__}: {exc}", key=key)


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


# An intent's upload is created right after its record: only an upload of that key initiated in this
# window after the record (server clock both) can be the one a killed apply started.
INTENT_WINDOW_S = 120
CLOCK_SLACK_S = 1  # LastModified and Initiated are whole seconds on some servers (SeaweedFS)


def journal_key(key: str, name: str) -> str:
    """Where a record of `key` lives, `name` being its intent token: fixed length, whatever the key."""
    digest = hashlib.sha256(f"{key}\n{name}".encode()).hexdigest()[:40]
    return f"{UPLOAD_JOURNAL_PREFIX}{digest}.json"


def _parse_journal(record: str, raw: bytes, recorded_at: datetime | None = None) -> JournaledUpload:
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


def make_session(spec: S3StoreSpec) -> boto3.session.Session:
    from reconciler.stores.s3_client import FastParserFactory

    core = botocore.session.Session()
    # Listing pages parsed off the XML: botocore's generic parser is most of a no-op plan's time.
    core.register_component("response_parser_factory", FastParserFactory())
    keys = env_credentials(spec)
    return boto3.session.Session(botocore_session=core, profile_name=None if keys else spec.profile, **keys)


def make_client(
    spec: S3StoreSpec,
    *,
    session: boto3.session.Session | None = None,
    max_pool_connections: int = 32,
    max_attempts: int = 5,
) -> S3Client:
    from botocore.config import Config

    from reconciler.stores.s3_client import tune_client

    session = session or make_session(spec)
    config = Config(
        region_name=spec.region,
        s3={"addressing_style": cast(Any, spec.addressing_style)},
        request_checksum_calculation=cast(Any, spec.checksum),
        response_checksum_validation=cast(Any, spec.checksum),
        max_pool_connections=max_pool_connections,
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=120,
    )
    client = session.client("s3", endpoint_url=spec.endpoint, config=config)
    tune_client(client)
    return client


def make_raw(spec: S3StoreSpec, session: boto3.session.Session, client: S3Client, pool_size: int) -> RawS3 | None:
    """The direct path for small PUTs and listing pages, or None where botocore cannot tell where to send them."""
    credentials = session.get_credentials()  # botocore's provider chain; refreshable ones refresh
    if credentials is None:
        return None  # botocore raises its clear NoCredentials error on the first request
    try:
        return through_botocore(client, credentials.get_frozen_credentials, spec.bucket, pool_size=pool_size)
    except (ValueError, botocore.exceptions.BotoCoreError):
        return None


def _raw_call(action: str, key: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except NETWORK_ERRORS as exc:
        raise TransientStoreError(f"{action} {key}: {type(exc).__name__}: {exc}", code="Network", key=key) from exc
    except Exception as exc:
        raise translate(exc, key=key, action=action) from exc


class S3Store:
    def __init__(
        self,
        spec: S3StoreSpec,
        client: S3Client | None = None,
        *,
        multipart_threshold: int = 64 * MIB,
        part_size: int = 8 * MIB,
        part_concurrency: int = 4,
        max_parts_in_memory: int = 6,
        copy_part_size: int = 512 * MIB,
        max_pool_connections: int = 32,
        list_concurrency: int = 8,
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self.bucket = spec.bucket
        self._raw: RawS3 | None = None
        self._client: S3Client | None = client
        self._client_lock = threading.Lock()
        self._pool_size = max_pool_connections
        self.list_concurrency = list_concurrency
        if client is None:
            # Endpoint and credentials known without botocore: the client is built only if a call needs it.
            self._raw = direct(spec, pool_size=max_pool_connections)
            if self._raw is None:
                self._use_botocore()
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.part_concurrency = part_concurrency
        self.copy_part_size = copy_part_size
        # Store-wide, not per upload: parallel large uploads share one memory budget of
        # max_parts_in_memory * part_size, whatever the file sizes and the apply parallelism.
        self._part_slots = threading.BoundedSemaphore(max(1, max_parts_in_memory))
        self.full_object_checksum = spec.checksum == "when_supported"
        self._etags_trusted: bool | None = None
        # The lock id of the apply holding this bucket, written into each upload record (set by the apply session).
        self.apply_id: str | None = None

    def _use_botocore(self) -> None:
        """botocore decides endpoint and credentials, for the direct path too (a redirect, SSO, IMDS...)."""
        session = make_session(self.spec)
        self._client = make_client(self.spec, session=session, max_pool_connections=self._pool_size)
        self._raw = make_raw(self.spec, session, self._client, self._pool_size)

    @property
    def client(self) -> S3Client:
        with self._client_lock:
            if self._client is None:
                self._client = make_client(self.spec, max_pool_connections=self._pool_size)
            return self._client

    def _call(self, action: str, key: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except Exception as exc:
            raise translate(exc, key=key, action=action) from exc

    def check_bucket(self) -> None:
        """Fail early, and clearly, when the bucket is missing or unreachable."""
        if self._raw is not None and self._client is None:
            try:
                if _raw_call("head bucket", self.bucket, self._raw.head_bucket) == 200:
                    return
            except StoreError:
                pass
            # Missing, denied, in another region, unreachable: botocore's view and errors decide.
            self._raw.close()
            self._use_botocore()
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status == 404:
                raise PermanentStoreError(
                    f'store "{self.name}": bucket "{self.bucket}" does not exist at '
                    f"{self.spec.endpoint or 'the default AWS endpoint'}",
                    code="NoSuchBucket",
                ) from exc
            if status == 403:
                raise PermanentStoreError(
                    f'store "{self.name}": access to bucket "{self.bucket}" denied (403)', code="AccessDenied"
                ) from exc
            raise translate(exc, key="", action=f"head bucket {self.bucket}") from exc
        except Exception as exc:
            err = translate(exc, key="", action=f'store "{self.name}": reach bucket "{self.bucket}"')
            raise err from exc

    def _pages(self, prefix: str, known: Iterable[str] | None) -> Iterator[dict[str, Any]]:
        if self._raw is None:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                yield cast(dict[str, Any], page)
            return
        if self._raw.server is None:
            _raw_call("head bucket", self.bucket, self._raw.head_bucket)  # which server, so which order
        order = s3_listing.order_of(self._raw.server or "")
        pages = s3_listing.listing(
            self._raw.list_pages, prefix, known=known, workers=self.list_concurrency, order=order
        )
        while page := _raw_call("list", prefix, next, pages, None):
            yield page

    def list(self, prefix: str, known: Iterable[str] | None = None) -> Iterator[Entry]:
        """Every object under `prefix` except pixel's own space (the lock, move scratch, upload records): that is
        bookkeeping, never data to sync, prune, inventory or verify, even under a whole-bucket prefix.

        `known`: keys expected under `prefix`, to list it in ranges cut at them (stores/s3_listing.py)."""
        # S3StoreSpec.reserves with its prefixes worked out once per listing, not once per key.
        own, lock = self.spec.reserved_prefixes(), self.spec.lock_key
        try:
            for page in self._pages(prefix, known):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):  # folder placeholder objects hold no data
                        continue
                    if key.startswith(own) or key == lock:
                        continue
                    etag = obj.get("ETag", "").strip('"')
                    md5 = md5_from_etag(etag) if self._listed_etags_are_md5s() else None
                    if md5 is None:
                        md5 = self._md5_from_head(key)
                    mtime = obj.get("LastModified")
                    yield Entry(
                        key=key,
                        size=int(obj.get("Size", 0)),
                        md5=md5,
                        mtime_ns=int(mtime.timestamp() * 1e9) if mtime else None,
                        etag=etag,
                    )
        except StoreError:
            raise
        except Exception as exc:
            raise translate(exc, key=prefix, action="list") from exc

    def list_expecting(self, prefix: str, known: Iterable[str]) -> Iterator[Entry]:
        return self.list(prefix, known)

    def _listed_etags_are_md5s(self) -> bool:
        """False when the bucket encrypts with KMS by default: those ETags look like md5s but are not."""
        if self._etags_trusted is None and self._raw is not None and self._client is None:
            self._etags_trusted = not (self._raw.encryption_algorithms() or frozenset()) & KMS_ALGORITHMS
        if self._etags_trusted is None:
            try:
                rules = self.client.get_bucket_encryption(Bucket=self.bucket)["ServerSideEncryptionConfiguration"][
                    "Rules"
                ]
                algorithms = {r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules}
                self._etags_trusted = not algorithms & KMS_ALGORITHMS
            except Exception:
                # No default encryption configured, or an endpoint without the API: plain ETags.
                self._etags_trusted = True
        return self._etags_trusted

    def _md5_from_head(self, key: str) -> str | None:
        head = self._call("head", key, self.client.head_object, Bucket=self.bucket, Key=key)
        return md5_from_metadata(head.get("Metadata", {}))

    def stat(self, key: str) -> Entry | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status == 404:
                return None
            raise translate(exc, key=key, action="head") from exc
        except Exception as exc:
            raise translate(exc, key=key, action="head") from exc
        etag = str(head.get("ETag", "")).strip('"')
        md5 = md5_from_metadata(head.get("Metadata", {})) or _etag_md5_of_head(head)
        mtime = head.get("LastModified")
        return Entry(
            key=key,
            size=int(head.get("ContentLength", 0)),
            md5=md5,
            mtime_ns=int(mtime.timestamp() * 1e9) if mtime else None,
            etag=etag,
        )

    def recorded_md5s(self, key: str) -> tuple[Entry, str | None, str | None] | None:
        """(entry, md5 in metadata, md5 the ETag is) for `pixel verify`; None when the object is gone."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0) == 404:
                return None
            raise translate(exc, key=key, action="head") from exc
        except Exception as exc:
            raise translate(exc, key=key, action="head") from exc
        etag = str(head.get("ETag", "")).strip('"')
        meta_md5, etag_md5 = md5_from_metadata(head.get("Metadata", {})), _etag_md5_of_head(head)
        entry = Entry(key=key, size=int(head.get("ContentLength", 0)), md5=meta_md5 or etag_md5, etag=etag)
        return entry, meta_md5, etag_md5

    @contextlib.contextmanager
    def _open(self, key: str, if_match: str | None = None) -> Iterator[BinaryIO]:
        reader = _ResumingReader(self, key, etag=None if if_match is None else f'"{if_match.strip(chr(34))}"')
        try:
            yield cast(BinaryIO, reader)
        finally:
            reader.close()

    def open(self, key: str, *, if_match: str | None = None) -> AbstractContextManager[BinaryIO]:
        """The object's body, streamed; with `if_match` (an ETag) only that version of it, else 412."""
        return self._open(key, if_match)

    def _conditions(self, if_match: str | None, if_absent: bool) -> dict[str, str]:
        if if_absent:
            return {"IfNoneMatch": "*"}
        if if_match is not None:
            return {"IfMatch": f'"{if_match}"'}
        return {}

    def write(
        self,
        key: str,
        source: OpenSource,
        *,
        size: int,
        md5: str | None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> Entry:
        if md5 is None:
            raise PermanentStoreError(f"upload {key}: pixel uploads only content whose md5 it knows", key=key)
        conditions = self._conditions(if_match, if_absent)
        if size <= self.multipart_threshold:
            with source() as stream:
                # A small body goes as bytes: botocore sends a file object with `Expect: 100-continue`,
                # a round trip per object that dominates uploads of many small files.
                body: BinaryIO | bytes = stream.read(size + 1) if size <= SMALL_BODY else stream
                if isinstance(body, bytes) and len(body) != size:
                    raise ObjectChanged(
                        f"upload {key}: the source changed since the plan ({len(body)} bytes read, {size} planned); "
                        "re-run pixel plan",
                        code="412",
                        key=key,
                    )
                if self._raw is not None and (isinstance(body, bytes) or body.seekable()):
                    etag = self._raw_put(key, body, size, md5, if_match, if_absent)
                    return Entry(key=key, size=size, md5=md5, etag=etag)
                response = self._call(
                    "upload",
                    key,
                    self.client.put_object,
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=size,
                    # The server rejects the body (400 BadDigest) unless it hashes to this.
                    ContentMD5=base64.b64encode(bytes.fromhex(md5)).decode(),
                    Metadata={MD5_META: md5},
                    # botocore (crt) computes it; the server rejects the body unless it matches.
                    **({"ChecksumAlgorithm": "CRC64NVME"} if self.full_object_checksum else {}),
                    **conditions,
                )
            etag = str(response.get("ETag", "")).strip('"')
        else:
            etag = self._multipart_upload(key, source, size=size, md5=md5, conditions=conditions)
        return Entry(key=key, size=size, md5=md5, etag=etag)

    def _raw_put(
        self, key: str, body: bytes | BinaryIO, size: int, md5: str, if_match: str | None, if_absent: bool
    ) -> str:
        assert self._raw is not None
        headers = {
            # The server rejects the body (400 BadDigest) unless it hashes to this.
            "Content-MD5": base64.b64encode(bytes.fromhex(md5)).decode(),
            f"x-amz-meta-{MD5_META}": md5,
        }
        if if_absent:
            headers["If-None-Match"] = "*"
        elif if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        if self.full_object_checksum:
            crc = crc64nvme(body) if isinstance(body, bytes) else _crc64_of_stream(key, body, size)
            headers["x-amz-checksum-crc64nvme"] = _crc64_b64(crc)
            headers["x-amz-sdk-checksum-algorithm"] = "CRC64NVME"
        return str(_raw_call("upload", key, self._raw.put, key, body, size, headers))

    def _part_size_for(self, size: int) -> int:
        # S3 allows 10,000 parts: very large files get larger parts, rounded up to whole MiB.
        needed = -(-size // MAX_PARTS)
        return max(self.part_size, -(-needed // MIB) * MIB)

    def _upload_part(
        self, key: str, upload_id: str, number: int, chunk: bytes, crc: int | None
    ) -> dict[str, Any]:
        integrity: dict[str, str] = (
            {"ChecksumCRC64NVME": _crc64_b64(crc)}
            if crc is not None
            else {"ContentMD5": base64.b64encode(hashlib.md5(chunk).digest()).decode()}
        )
        part = self._call(
            "upload part",
            key,
            self.client.upload_part,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            # A stream, not bytes: botocore concatenates a bytes body onto the headers, doubling each part in memory.
            Body=io.BytesIO(chunk),
            **integrity,
        )
        listed = {k: v for k, v in integrity.items() if k.startswith("Checksum")}  # Content-MD5 is per request only
        return {"ETag": part["ETag"], "PartNumber": number, **listed}

    def _multipart_upload(
        self, key: str, source: OpenSource, *, size: int, md5: str, conditions: dict[str, str]
    ) -> str:
        """Parts go up in parallel; memory is bounded by the store's part slots, not the file size."""
        full_object: dict[str, str] = (
            {"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "FULL_OBJECT"} if self.full_object_checksum else {}
        )
        upload_id, record = self._start_multipart("upload", key, Metadata={MD5_META: md5}, **full_object)
        part_size = self._part_size_for(size)
        digest = hashlib.md5()
        crc = 0
        futures: list[Future[dict[str, Any]]] = []
        pool = ThreadPoolExecutor(max_workers=self.part_concurrency, thread_name_prefix="pixel-part")
        try:
            with source() as body:
                number = 1
                while True:
                    self._part_slots.acquire()
                    try:
                        chunk = _read_full(body, part_size)
                    except BaseException:
                        self._part_slots.release()
                        raise
                    if not chunk:
                        self._part_slots.release()
                        break
                    digest.update(chunk)
                    part_crc = crc64nvme(chunk) if self.full_object_checksum else None
                    crc = crc64nvme(chunk, crc) if self.full_object_checksum else 0
                    future = pool.submit(self._upload_part, key, upload_id, number, chunk, part_crc)
                    future.add_done_callback(lambda _: self._part_slots.release())
                    futures.append(future)
                    del chunk
                    number += 1
                    failed = next((f for f in futures if f.done() and f.exception() is not None), None)
                    if failed is not None:
                        failed.result()  # stop reading: a part failed for good
            parts = [f.result() for f in futures]
            if digest.hexdigest() != md5:
                raise PermanentStoreError(
                    f"upload {key}: the local file changed while it was read (md5 {digest.hexdigest()} "
                    f"!= planned {md5}); nothing was written",
                    code="BadDigest",
                    key=key,
                )
            extra: dict[str, str] = (
                {"ChecksumCRC64NVME": _crc64_b64(crc), "ChecksumType": "FULL_OBJECT"}
                if self.full_object_checksum
                else {}
            )
            done = self._call(
                "complete upload",
                key,
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": cast(Any, parts)},
                **extra,
                **conditions,
            )
        except BaseException:
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True)
            self._abort_own(key, upload_id, record)
            raise
        pool.shutdown(wait=True)
        self._forget(record)
        return str(done.get("ETag", "")).strip('"')

    def copy(
        self,
        src_key: str,
        dst_key: str,
        *,
        md5: str | None,
        src_etag: str | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> Entry:
        kwargs: dict[str, Any] = dict(self._conditions(if_match, if_absent))
        if src_etag is not None:
            kwargs["CopySourceIfMatch"] = f'"{src_etag}"'
        if md5 is not None:
            # REPLACE would drop the object's other metadata and its Content-Type: carry them over.
            pinned = {"IfMatch": f'"{src_etag}"'} if src_etag is not None else {}
            head = self._call("copy", src_key, self.client.head_object, Bucket=self.bucket, Key=src_key, **pinned)
            kwargs.update(_kept_headers(head, md5))
            kwargs["MetadataDirective"] = "REPLACE"
        try:
            response = self._call(
                "copy",
                f"{src_key} => {dst_key}",
                self.client.copy_object,
                Bucket=self.bucket,
                Key=dst_key,
                CopySource={"Bucket": self.bucket, "Key": src_key},
                **kwargs,
            )
        except PermanentStoreError as exc:
            if not _copy_too_large(exc):
                raise
            return self._multipart_copy(
                src_key, dst_key, md5=md5, src_etag=src_etag, conditions=self._conditions(if_match, if_absent)
            )
        result = response.get("CopyObjectResult", {})
        etag = str(result.get("ETag", "")).strip('"')
        entry = self.stat(dst_key)
        size = entry.size if entry else 0
        return Entry(key=dst_key, size=size, md5=md5, etag=etag)

    def _multipart_copy(
        self, src_key: str, dst_key: str, *, md5: str | None, src_etag: str | None, conditions: dict[str, str]
    ) -> Entry:
        """Server-side copy in ranged parts, for sources over CopyObject's 5 GiB limit. No byte comes here."""
        where = f"{src_key} => {dst_key}"
        pinned = {"IfMatch": f'"{src_etag}"'} if src_etag is not None else {}
        head = self._call("copy", where, self.client.head_object, Bucket=self.bucket, Key=src_key, **pinned)
        size = int(head.get("ContentLength", 0))
        etag = str(head.get("ETag", "")).strip('"')
        # Every part reads the version the HEAD saw, or the copy fails with 412.
        source_pin = f'"{src_etag or etag}"'
        upload_id, record = self._start_multipart("copy", dst_key, **_kept_headers(head, md5))
        part_size = max(self.copy_part_size, -(-size // MAX_PARTS))
        ranges = [(n, start, min(start + part_size, size) - 1) for n, start in enumerate(range(0, size, part_size), 1)]

        def one(part: tuple[int, int, int]) -> dict[str, Any]:
            number, first, last = part
            result = self._call(
                "copy part",
                where,
                self.client.upload_part_copy,
                Bucket=self.bucket,
                Key=dst_key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": src_key},
                CopySourceRange=f"bytes={first}-{last}",
                CopySourceIfMatch=source_pin,
            )
            return {"ETag": result["CopyPartResult"]["ETag"], "PartNumber": number}

        try:
            with ThreadPoolExecutor(max_workers=self.part_concurrency, thread_name_prefix="pixel-copy") as pool:
                parts = list(pool.map(one, ranges))
            done = self._call(
                "copy",
                where,
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=dst_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": cast(Any, parts)},
                **conditions,
            )
        except BaseException:
            self._abort_own(dst_key, upload_id, record)
            raise
        self._forget(record)
        return Entry(key=dst_key, size=size, md5=md5, etag=str(done.get("ETag", "")).strip('"'))

    # --- multipart uploads pixel started, recorded in the bucket ---------------------------------------------

    def _start_multipart(self, action: str, key: str, **kwargs: Any) -> tuple[str, str]:
        """Intent record, CreateMultipartUpload, record with the id: (upload id, record key).

        The record goes first so that no upload ever exists unrecorded: a process killed right after the
        create leaves an intent the next apply resolves (`abort_journaled`). No part goes up before the
        record holds the id.
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
        self._put_record(record, body)
        # A failed create keeps its intent: the request may have reached the server; the next apply looks.
        created = self._call(action, key, self.client.create_multipart_upload, Bucket=self.bucket, Key=key, **kwargs)
        upload_id = str(created["UploadId"])
        try:
            self._put_record(record, {**body, "upload_id": upload_id})
        except BaseException:
            # Its intent cannot name it: never leave it running.
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                self._forget(record)
            raise
        return upload_id, record

    def _put_record(self, record: str, body: dict[str, Any]) -> None:
        self._call(
            "record upload",
            record,
            self.client.put_object,
            Bucket=self.bucket,
            Key=record,
            Body=(json.dumps(body, indent=2) + "\n").encode(),
            ContentType="application/json",
        )

    def _forget(self, record: str) -> None:
        """Drop an upload's record once it is completed or aborted. A record left behind is harmless:
        the next apply finds the upload gone and removes the record then."""
        with contextlib.suppress(Exception):
            self.client.delete_object(Bucket=self.bucket, Key=record)

    def _abort_own(self, key: str, upload_id: str, record: str) -> None:
        """Abort an upload this process started; its record goes only once the abort is done."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            if not _no_such_upload(exc):
                return  # kept: the next apply aborts it from its record
        self._forget(record)

    def journaled_uploads(self) -> tuple[JournaledUpload, ...]:
        """The multipart uploads pixel recorded in this bucket and has not finished: a killed apply's leftovers
        when read under the apply lock. Uploads without a record (other tools') are never among them."""
        found: tuple[JournaledUpload, ...] = ()
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=UPLOAD_JOURNAL_PREFIX):
                for obj in page.get("Contents", []):
                    record = obj["Key"]
                    try:
                        response = self.client.get_object(Bucket=self.bucket, Key=record)
                        raw = response["Body"].read()
                    except botocore.exceptions.ClientError as exc:
                        if int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0) == 404:
                            continue  # finished and removed since the listing
                        raise
                    found += (_parse_journal(record, raw, obj.get("LastModified")),)
        except StoreError:
            raise
        except Exception as exc:
            raise translate(exc, key=UPLOAD_JOURNAL_PREFIX, action="list upload records") from exc
        return found

    def abort_journaled(self, upload: JournaledUpload) -> bool:
        """Abort a recorded upload and remove its record. False when it was no longer in progress
        (completed or aborted before its record could be removed): then only the record goes."""
        if upload.problem:
            raise PermanentStoreError(f"{upload.record}: {upload.problem}", key=upload.record)
        upload_id = upload.upload_id or self._intended_upload(upload)
        in_progress = bool(upload_id)
        if in_progress:
            try:
                self.client.list_parts(Bucket=self.bucket, Key=upload.key, UploadId=upload_id, MaxParts=1)
            except Exception as exc:
                if not _no_such_upload(exc):
                    raise translate(exc, key=upload.key, action="look up upload") from exc
                in_progress = False
        if in_progress:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload.key, UploadId=upload_id)
            except Exception as exc:
                if not _no_such_upload(exc):
                    raise translate(exc, key=upload.key, action="abort upload") from exc
                in_progress = False
        self._call(
            "delete upload record", upload.record, self.client.delete_object, Bucket=self.bucket, Key=upload.record
        )
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
        candidates: list[str] = []
        try:
            listed = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=upload.key)
            for item in listed.get("Uploads", []):
                initiated = item.get("Initiated")
                if item.get("Key") != upload.key or initiated is None:
                    continue
                if not earliest <= initiated.timestamp() <= latest:
                    continue
                parts = self.client.list_parts(
                    Bucket=self.bucket, Key=upload.key, UploadId=item["UploadId"], MaxParts=1
                )
                if not parts.get("Parts"):
                    candidates.append(str(item["UploadId"]))
        except Exception as exc:
            raise translate(exc, key=upload.key, action="list uploads") from exc
        if len(candidates) > 1:
            raise PermanentStoreError(
                f"{upload.record}: {len(candidates)} part-less uploads of {upload.key} started right after this "
                "intent record; pixel cannot tell which is its own, so it aborts none",
                key=upload.key,
            )
        return candidates[0] if candidates else ""

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if if_match is not None:
            kwargs["IfMatch"] = f'"{if_match}"'
        self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=key, **kwargs)


class _ResumingReader:
    """An object's body, streamed; a dropped connection resumes with a ranged GET where it broke.

    The resumed request carries If-Match on the first response's ETag, so the
    bytes after the break come from the same version of the object as those
    before it (412 otherwise). Memory is one read's worth, whatever the size.
    """

    def __init__(self, store: S3Store, key: str, *, resumes: int = 5, etag: str | None = None) -> None:
        self._store = store
        self._key = key
        self._resumes = resumes
        self._position = 0
        self._etag: str | None = etag
        self._body: Any = None
        self._open_at(0)

    def _open_at(self, position: int) -> None:
        kwargs: dict[str, Any] = {}
        if position:
            kwargs["Range"] = f"bytes={position}-"
        if self._etag is not None:
            kwargs["IfMatch"] = self._etag
        s = self._store
        response = s._call("download", self._key, s.client.get_object, Bucket=s.bucket, Key=self._key, **kwargs)
        self._etag = self._etag or response.get("ETag")
        self._body = response["Body"]

    def read(self, n: int = -1) -> bytes:
        while True:
            try:
                data = cast(bytes, self._body.read(n if n >= 0 else None))
            except Exception as exc:
                err = translate(exc, key=self._key, action="download")
                if not isinstance(err, TransientStoreError) or self._resumes <= 0:
                    raise err from exc
                self._resumes -= 1
                with contextlib.suppress(Exception):
                    self._body.close()
                self._open_at(self._position)
                continue
            self._position += len(data)
            return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()


_KEPT_HEADERS = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl")


def _kept_headers(head: Any, md5: str | None) -> dict[str, Any]:
    """A copy's metadata and content headers: the source's, plus the md5 pixel records."""
    metadata = dict(head.get("Metadata", {}))
    if md5 is not None:
        metadata[MD5_META] = md5
    kept: dict[str, Any] = {name: head[name] for name in _KEPT_HEADERS if head.get(name)}
    return {"Metadata": metadata, **kept}


def _no_such_upload(exc: Exception) -> bool:
    """The upload is not in progress (any more): completed, aborted, or never known to the server."""
    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return exc.response.get("Error", {}).get("Code") == "NoSuchUpload" or status == 404


def _copy_too_large(exc: StoreError) -> bool:
    """AWS refuses CopyObject above 5 GiB with 400 InvalidRequest; some S3-compatible servers say EntityTooLarge."""
    text = str(exc).lower()
    return exc.code == "EntityTooLarge" or (exc.code == "InvalidRequest" and "copy source is larger" in text)


def _read_full(body: BinaryIO, n: int) -> bytes:
    """Exactly n bytes unless the stream ends: every part but the last must be full-sized."""
    first = body.read(n)
    if len(first) == n or not first:
        return first
    pieces = [first]
    got = len(first)
    while got < n and (more := body.read(n - got)):
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


def _crc64_of_stream(key: str, stream: BinaryIO, size: int) -> int:
    """The CRC64NVME of the rest of `stream`, which is then put back where it was."""
    start, crc, seen = stream.tell(), 0, 0
    while chunk := stream.read(8 * MIB):
        crc = crc64nvme(chunk, crc)
        seen += len(chunk)
    stream.seek(start)
    if seen != size:
        raise ObjectChanged(
            f"upload {key}: the source changed since the plan ({seen} bytes read, {size} planned); re-run pixel plan",
            code="412",
            key=key,
        )
    return int(crc)


def _crc64_b64(value: int) -> str:
    return base64.b64encode(value.to_bytes(8, "big")).decode()
