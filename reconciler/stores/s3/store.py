"""An S3 bucket as a Store.

Change detection needs each object's md5. The listing gives it for free when
the ETag is a plain md5 (single-part upload, no SSE-KMS); otherwise the md5
pixel recorded in metadata is read with one HEAD, and failing that the entry
carries md5=None so the planner can schedule a rehash.

Multipart uploads and copies go through multipart.py, recorded by journal.py
under `.pixel/uploads/` while in progress. `list()` never shows these records.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from reconciler.logs import get_logger
from reconciler.model import Entry, S3StoreSpec
from reconciler.stores.base import (
    ObjectChanged,
    OpenSource,
    PermanentStoreError,
    StoreError,
    TransientStoreError,
)
from reconciler.stores.retry import outermost
from reconciler.stores.s3 import listing
from reconciler.stores.s3.conditions import as_headers, conditions
from reconciler.stores.s3.credentials import env_credentials
from reconciler.stores.s3.deadlines import deadlines
from reconciler.stores.s3.direct import RawS3, direct, through_botocore
from reconciler.stores.s3.direct.http_pool import Response
from reconciler.stores.s3.errors import (
    TIMEOUT,
    call,
    code_of,
    copy_too_large,
    is_missing,
    is_timeout,
    raw_call,
    status_of,
    translate,
    translate_raw,
)
from reconciler.stores.s3.journal import Journal, JournaledUpload
from reconciler.stores.s3.lazy import lazy
from reconciler.stores.s3.multipart import MAX_PARTS, Parts, multipart
from reconciler.stores.s3.objects import (
    KMS_ALGORITHMS,
    MD5_META,
    entry_of_head,
    kept_headers,
    md5_from_etag,
    md5_from_metadata,
    mtime_ns,
    unquoted,
)

if TYPE_CHECKING:
    import boto3
    import botocore.exceptions
    import botocore.session
    from mypy_boto3_s3 import S3Client
else:
    # Imported when first used: a warm no-op plan over the direct path (direct.direct) never does.
    boto3 = lazy("boto3")
    botocore = lazy("botocore")

MIB = 1024 * 1024
# Bodies up to this size are read into memory and sent in one go (at most parallelism x 1 MiB in flight).
SMALL_BODY = 1 * MIB


def crc64nvme(data: bytes | bytearray | memoryview, previous: int = 0) -> int:
    from awscrt.checksums import crc64nvme as crc  # awscrt's import alone costs a no-op plan 0.1 s

    return int(crc(cast(bytes, data), previous))  # any buffer: the stub says bytes


def make_session(spec: S3StoreSpec) -> boto3.session.Session:
    from reconciler.stores.s3.client import FastParserFactory

    core = botocore.session.Session()
    # Listing pages parsed off the XML: botocore's generic parser is most of a no-op plan's time.
    core.register_component("response_parser_factory", FastParserFactory())
    keys = env_credentials(spec)
    profile = None if keys else spec.profile
    try:
        return boto3.session.Session(botocore_session=core, profile_name=profile, **keys)
    except botocore.exceptions.ProfileNotFound as exc:
        raise missing_profile(spec, profile) from exc


def missing_profile(spec: S3StoreSpec, profile: str | None, environ: Mapping[str, str] | None = None) -> StoreError:
    """One line naming the profile and where it was asked for, instead of botocore's 60-line traceback."""
    env = os.environ if environ is None else environ
    if profile:
        name, source = profile, f'the spec\'s `profile` of store "{spec.name}"'
    else:
        variable = "AWS_PROFILE" if env.get("AWS_PROFILE") else "AWS_DEFAULT_PROFILE"
        name, source = env.get(variable, ""), variable
    files = " nor ".join(
        env.get(variable) or default
        for variable, default in (("AWS_CONFIG_FILE", "~/.aws/config"), ("AWS_SHARED_CREDENTIALS_FILE",
                                                                          "~/.aws/credentials"))
    )
    return PermanentStoreError(
        f'store "{spec.name}": the AWS profile "{name}" (from {source}) is in neither {files}; '
        "name a profile they define, or unset it to use the default credential chain",
        code="ProfileNotFound",
    )


def make_client(
    spec: S3StoreSpec,
    *,
    session: boto3.session.Session | None = None,
    max_pool_connections: int = 32,
) -> S3Client:
    from botocore.config import Config

    from reconciler.stores.s3.client import tune_client

    session = session or make_session(spec)
    limits = deadlines(spec)
    config = Config(
        region_name=spec.region,
        s3={"addressing_style": cast(Any, spec.addressing_style)},
        request_checksum_calculation=cast(Any, spec.checksum),
        response_checksum_validation=cast(Any, spec.checksum),
        max_pool_connections=max_pool_connections,
        # Total sends, the first included (`max_attempts` here would count retries only). botocore retries
        # nothing itself: tune_client's handler resends once after a dropped connection, and throttling
        # and 5xx surface to the one retry layer (stores/retry.py).
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=limits.connect,
        read_timeout=limits.read,
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
        limits = deadlines(spec)
        return through_botocore(
            client,
            credentials.get_frozen_credentials,
            spec.bucket,
            pool_size=pool_size,
            connect_timeout=limits.connect,
            read_timeout=limits.read,
        )
    except (ValueError, botocore.exceptions.BotoCoreError):
        return None


# What a 403's S3 error code means for the one running pixel, and what to check.
DENIED = {
    "SignatureDoesNotMatch": "the request signature does not match: the secret access key is wrong for this access "
    "key ID (check AWS_SECRET_ACCESS_KEY, the profile's aws_secret_access_key or the store's credentials_env), "
    "or the endpoint or region is not the one the keys belong to",
    "InvalidAccessKeyId": "this endpoint does not know the access key ID (check AWS_ACCESS_KEY_ID, the profile's "
    "aws_access_key_id or the store's credentials_env, and that the endpoint is the right one)",
    "AccessDenied": "the credentials were accepted but may not use this bucket (check the IAM or bucket policy "
    "grants s3:ListBucket, s3:GetObject and s3:PutObject on it to this identity)",
    "RequestTimeTooSkewed": "this machine's clock is too far from the server's: set it right (NTP)",
    "ExpiredToken": "the session token has expired: refresh the credentials (AWS_SESSION_TOKEN, SSO login)",
}

FAR_ROUND_TRIP_S = 0.01  # a HEAD slower than this: the bucket is not on this network


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
        apply_id: str | None = None,
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self.bucket = spec.bucket
        self._raw: RawS3 | None = None
        self._client: S3Client | None = client
        self._client_lock = threading.Lock()
        self._root: S3Store = self  # the store for_apply() bound this one from
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
        self._buffers = _PartBuffers(max(1, max_parts_in_memory))
        self.full_object_checksum = spec.checksum == "when_supported"
        self._etags_trusted: bool | None = None
        self._journal = Journal(lambda: self.client, self.bucket, apply_id)

    @property
    def apply_id(self) -> str | None:
        """The lock id of the apply this store uploads for: written into each upload record."""
        return self._journal.apply_id

    def for_apply(self, apply_id: str | None) -> S3Store:
        """This store, its connections and memory budget shared, whose upload records name `apply_id`."""
        bound: S3Store = object.__new__(S3Store)
        bound.__dict__.update(self.__dict__)
        bound._journal = Journal(lambda: bound.client, self.bucket, apply_id)
        return bound

    def _use_botocore(self) -> None:
        """botocore decides endpoint and credentials, for the direct path too (a redirect, SSO, IMDS...)."""
        session = make_session(self.spec)
        self._client = make_client(self.spec, session=session, max_pool_connections=self._pool_size)
        self._raw = make_raw(self.spec, session, self._client, self._pool_size)

    @property
    def client(self) -> S3Client:
        if self._client is None and self._root is not self:
            # One botocore client for the store and every apply bound from it: each costs 0.2 s of CPU.
            return self._root.client
        with self._client_lock:
            if self._client is None:
                self._client = make_client(self.spec, max_pool_connections=self._pool_size)
            return self._client

    def _on(self, action: str, where: str, operation: Callable[..., Any], key: str, **kwargs: Any) -> Any:
        """`operation` on `key` of this bucket, its failure a StoreError that names `action` and `where`."""
        return call(action, where, operation, Bucket=self.bucket, Key=key, **kwargs)

    def check_bucket(self) -> None:
        """Fail early, and clearly, when the bucket is missing or unreachable."""
        if self._raw is not None and self._client is None:
            raw = self._raw

            def raw_head() -> int:
                try:
                    status = raw_call("head bucket", self.bucket, raw.head_bucket)
                except StoreError as exc:
                    if exc.code == TIMEOUT:
                        raise self._unanswered(exc) from exc
                    raise
                if status == 429 or status >= 500:  # throttled or unwell: the retry layer asks again
                    raise TransientStoreError(f"head bucket {self.bucket}: {status}", code=str(status))
                return status

            # While HEAD goes out, the round trip the first listing would make before its first page goes too:
            # the bucket's default encryption (whether its ETags are md5s).
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixel-check") as ahead:
                encryption = ahead.submit(raw.encryption_algorithms)
                started = time.monotonic()
                try:
                    reachable = outermost(raw_head) == 200
                except StoreError as exc:
                    if exc.code == TIMEOUT:
                        raise  # botocore would wait as long again, and say less
                    reachable = False
                far = time.monotonic() - started > FAR_ROUND_TRIP_S
            if reachable:
                # Only now: a bucket that could not be reached says nothing about its encryption.
                self._etags_trusted = not (encryption.result() or frozenset()) & KMS_ALGORITHMS
                if far:
                    # Far away, each of the listing's ranges would pay a connect first: opened meanwhile, in the
                    # background (at 25 ms each way, 0.1 s of a 0.8 s plan). Near, that costs more than it saves.
                    raw.warm(self.list_concurrency)
                return
            # Missing, denied, in another region, unreachable: botocore's view and errors decide.
            raw.close()
            self._use_botocore()

        def head() -> None:
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except Exception as exc:
                raise self._bucket_error(exc) from exc

        outermost(head)

    def _unanswered(self, exc: StoreError) -> PermanentStoreError:
        """The first request met a deadline: not retried, since each try would wait it out again (a server that
        accepts connections and never answers held `pixel plan` for 25 minutes that way)."""
        return PermanentStoreError(f'store "{self.name}": {exc}', code=TIMEOUT)

    def _denied(self) -> PermanentStoreError:
        """A 403 on HEAD bucket, which has no body to say why: one listing request asks again for S3's error
        code, and the message says what to check for it. The request id (for the provider's support) and the
        code go to the debug log (`-v`); no key, secret or signature is ever part of either."""
        where = f'store "{self.name}": bucket "{self.bucket}" at {self.spec.endpoint or "the AWS endpoint"}'
        code = ""
        try:
            self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except botocore.exceptions.ClientError as exc:
            code = code_of(exc)
            meta = exc.response.get("ResponseMetadata", {})
            get_logger("pixel.s3").debug(
                "access denied", store=self.name, bucket=self.bucket, code=code or str(status_of(exc)),
                request_id=meta.get("RequestId", ""), host_id=meta.get("HostId", ""),
            )
        except Exception as exc:  # unreachable now, say: the 403 is still the answer to give
            get_logger("pixel.s3").debug("access denied", store=self.name, bucket=self.bucket, probe=repr(exc))
        code = code or "AccessDenied"
        why = DENIED.get(code, DENIED["AccessDenied"])
        return PermanentStoreError(f"{where}: denied (403 {code}): {why}", code=code)

    def _bucket_error(self, exc: Exception) -> StoreError:
        if is_timeout(exc):
            return self._unanswered(translate(exc, key=self.bucket, action="head bucket"))
        status = status_of(exc)
        if status == 404:
            return PermanentStoreError(
                f'store "{self.name}": bucket "{self.bucket}" does not exist at '
                f"{self.spec.endpoint or 'the default AWS endpoint'}",
                code="NoSuchBucket",
            )
        if status == 403:
            return self._denied()
        where = f"head bucket {self.bucket}" if status else f'store "{self.name}": reach bucket "{self.bucket}"'
        return translate(exc, key="", action=where)

    def _pages(self, prefix: str, known: Iterable[str] | None) -> Iterator[dict[str, Any]]:
        """The listing's pages, each request in the one retry layer: a page throttled is asked again, not the
        whole listing."""
        if self._raw is None:
            token: dict[str, Any] = {}
            while True:
                ask = functools.partial(self.client.list_objects_v2, Bucket=self.bucket, Prefix=prefix, **token)
                page = outermost(functools.partial(call, "list", prefix, ask))
                yield cast(dict[str, Any], page)
                if not page.get("IsTruncated") or not page.get("NextContinuationToken"):
                    return
                token = {"ContinuationToken": str(page["NextContinuationToken"])}
        raw = self._raw
        if raw.server is None:
            outermost(lambda: raw_call("head bucket", self.bucket, raw.head_bucket))  # which server, so which order
        order = listing.order_of(raw.server or "")

        def fetch(send: Callable[[], Response]) -> Response:
            return outermost(lambda: raw_call("list", prefix, send))

        list_pages = functools.partial(raw.list_pages, fetch=fetch)
        pages = listing.listing(list_pages, prefix, known=known, workers=self.list_concurrency, order=order)
        while page := raw_call("list", prefix, next, pages, None):
            yield page

    def list(self, prefix: str, known: Iterable[str] | None = None) -> Iterator[Entry]:
        """Every object under `prefix` except pixel's own space (the lock, move scratch, upload records): that is
        bookkeeping, never data to sync, prune, inventory or verify, even under a whole-bucket prefix.

        `known`: keys expected under `prefix`, to list it in ranges cut at them (stores/s3/listing.py)."""
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
                    etag = unquoted(obj.get("ETag"))
                    md5 = md5_from_etag(etag) if self._listed_etags_are_md5s() else None
                    if md5 is None:
                        md5 = self._md5_from_head(key)
                    yield Entry(
                        key=key,
                        size=int(obj.get("Size", 0)),
                        md5=md5,
                        mtime_ns=mtime_ns(obj.get("LastModified")),
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
        head = outermost(lambda: self._on("head", key, self.client.head_object, key))
        return md5_from_metadata(head.get("Metadata", {}))

    def recorded_md5s(self, key: str) -> tuple[Entry, str | None, str | None] | None:
        """(entry, md5 in metadata, md5 the ETag is) for `pixel verify` and rehash; None when the object is gone."""

        def head() -> Any:
            try:
                return self.client.head_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if is_missing(exc):
                    return None
                raise translate(exc, key=key, action="head") from exc

        found = outermost(head)
        return None if found is None else entry_of_head(key, found)

    def stat(self, key: str) -> Entry | None:
        found = self.recorded_md5s(key)
        return None if found is None else found[0]

    @contextlib.contextmanager
    def _open(self, key: str, if_match: str | None = None) -> Iterator[BinaryIO]:
        reader = _ResumingReader(self, key, etag=if_match)
        try:
            yield cast(BinaryIO, reader)
        finally:
            reader.close()

    def open(self, key: str, *, if_match: str | None = None) -> AbstractContextManager[BinaryIO]:
        """The object's body, streamed; with `if_match` (an ETag) only that version of it, else 412."""
        return self._open(key, if_match)

    @contextlib.contextmanager
    def open_range(self, key: str, start: int, stop: int, *, if_match: str | None = None) -> Iterator[BinaryIO]:
        """Bytes [start, stop) of the object, streamed (a ranged GET); `if_match` as for open."""
        reader = _ResumingReader(self, key, etag=if_match, start=start, stop=stop)
        try:
            yield cast(BinaryIO, reader)
        finally:
            reader.close()

    def write(
        self, key: str, source: OpenSource, *, size: int, md5: str | None, if_match: str | None = None,
        if_absent: bool = False,
    ) -> Entry:
        if md5 is None:
            raise PermanentStoreError(f"upload {key}: pixel uploads only content whose md5 it knows", key=key)
        when = conditions(if_match=if_match, if_absent=if_absent)
        if size > self.multipart_threshold:
            etag = self._multipart_upload(key, source, size=size, md5=md5, when=when)
            return Entry(key=key, size=size, md5=md5, etag=etag)
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
                etag = self._raw_put(key, body, size, md5, when)
                return Entry(key=key, size=size, md5=md5, etag=etag)
            response = self._on(
                "upload",
                key,
                self.client.put_object,
                key,
                Body=body,
                ContentLength=size,
                # The server rejects the body (400 BadDigest) unless it hashes to this.
                ContentMD5=base64.b64encode(bytes.fromhex(md5)).decode(),
                Metadata={MD5_META: md5},
                # botocore (crt) computes it; the server rejects the body unless it matches.
                **({"ChecksumAlgorithm": "CRC64NVME"} if self.full_object_checksum else {}),
                **when,
            )
        return Entry(key=key, size=size, md5=md5, etag=unquoted(response.get("ETag")))

    def _raw_put(self, key: str, body: bytes | BinaryIO, size: int, md5: str, when: dict[str, str]) -> str:
        assert self._raw is not None
        headers = {
            # The server rejects the body (400 BadDigest) unless it hashes to this.
            "Content-MD5": base64.b64encode(bytes.fromhex(md5)).decode(),
            f"x-amz-meta-{MD5_META}": md5,
            **as_headers(when),
        }
        if self.full_object_checksum:
            crc = crc64nvme(body) if isinstance(body, bytes) else _crc64_of_stream(key, body, size)
            headers["x-amz-checksum-crc64nvme"] = _crc64_b64(crc)
            headers["x-amz-sdk-checksum-algorithm"] = "CRC64NVME"
        return str(raw_call("upload", key, self._raw.put, key, body, size, headers))

    def _part_size_for(self, size: int) -> int:
        # S3 allows 10,000 parts: very large files get larger parts, rounded up to whole MiB.
        needed = -(-size // MAX_PARTS)
        return max(self.part_size, -(-needed // MIB) * MIB)

    def _upload_part(self, key: str, upload_id: str, number: int, chunk: memoryview) -> dict[str, Any]:
        """One part, checked by the server against its CRC64NVME (full-object mode) or Content-MD5."""
        crc = crc64nvme(chunk) if self.full_object_checksum else None
        integrity: dict[str, str] = (
            {"ChecksumCRC64NVME": _crc64_b64(crc)}
            if crc is not None
            else {"ContentMD5": base64.b64encode(hashlib.md5(chunk).digest()).decode()}
        )
        listed = {k: v for k, v in integrity.items() if k.startswith("Checksum")}  # Content-MD5 is per request only
        if self._raw is not None:
            # botocore would sign the payload with SHA-256 (over plain HTTP), a third pass over every byte on
            # each side, and spend a few ms of Python per request: the signed checksum header is the check.
            headers = (
                {"x-amz-checksum-crc64nvme": listed["ChecksumCRC64NVME"], "x-amz-sdk-checksum-algorithm": "CRC64NVME"}
                if crc is not None
                else {"Content-MD5": integrity["ContentMD5"]}
            )
            etag = raw_call("upload part", key, self._raw.upload_part, key, upload_id, number, chunk, headers)
            return {"ETag": etag, "PartNumber": number, **listed}
        part = self._on(
            "upload part",
            key,
            self.client.upload_part,
            key,
            UploadId=upload_id,
            PartNumber=number,
            # A stream over the buffer, not bytes: a copy would double each part in memory.
            Body=_ViewReader(chunk),
            **integrity,
        )
        return {"ETag": part["ETag"], "PartNumber": number, **listed}

    def _multipart_upload(self, key: str, source: OpenSource, *, size: int, md5: str, when: dict[str, str]) -> str:
        """Parts go up in parallel; memory is bounded by the store's part buffers, not the file size.

        The main thread only reads, into reused buffers; the whole-file md5 (and CRC64NVME) is taken on a
        thread of its own, in order, and each part's checksum on the thread that sends it: hashlib and the
        socket release the GIL, so reading, hashing and sending overlap on separate cores.
        """
        full_object: dict[str, str] = (
            {"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "FULL_OBJECT"} if self.full_object_checksum else {}
        )
        part_size = self._part_size_for(size)

        def send_parts(upload_id: str) -> Parts:
            with self._buffers.in_use():
                return send_parts_buffered(upload_id)

        def send_parts_buffered(upload_id: str) -> Parts:
            digest = hashlib.md5()
            crc = 0

            def hash_whole(view: memoryview) -> None:
                nonlocal crc
                digest.update(view)
                if self.full_object_checksum:
                    crc = crc64nvme(view, crc)

            futures: list[Future[dict[str, Any]]] = []
            failed: list[Future[dict[str, Any]]] = []
            pool = ThreadPoolExecutor(max_workers=self.part_concurrency, thread_name_prefix="pixel-part")
            # One worker: the parts are hashed in file order.
            hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixel-md5")
            try:
                with source() as body:
                    number = 1
                    while not failed:  # a part failed for good: stop reading
                        buffer = self._buffers.take(part_size)
                        try:
                            filled = _read_into(body, buffer)
                        except BaseException:
                            self._buffers.give_back(buffer)
                            raise
                        if not filled:
                            self._buffers.give_back(buffer)
                            break
                        view = memoryview(buffer)[:filled]
                        # The buffer is reused once both its hash and its send are done with it.
                        users = _Users(2, functools.partial(self._buffers.give_back, buffer))
                        hasher.submit(hash_whole, view).add_done_callback(users.done)
                        future = pool.submit(self._upload_part, key, upload_id, number, view)
                        future.add_done_callback(users.done)
                        future.add_done_callback(lambda f: failed.append(f) if _failed(f) else None)
                        futures.append(future)
                        del view, buffer
                        number += 1
                parts = [f.result() for f in futures]
                hasher.shutdown(wait=True)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
            finally:
                hasher.shutdown(wait=True, cancel_futures=True)
                pool.shutdown(wait=True)
            if digest.hexdigest() != md5:
                raise PermanentStoreError(
                    f"upload {key}: the local file changed while it was read (md5 {digest.hexdigest()} "
                    f"!= planned {md5}); nothing was written",
                    code="BadDigest",
                    key=key,
                )
            whole = {"ChecksumCRC64NVME": _crc64_b64(crc), "ChecksumType": "FULL_OBJECT"}
            return parts, whole if self.full_object_checksum else {}

        create = {"Metadata": {MD5_META: md5}, **full_object}
        return multipart(
            self._journal, self.client, action="upload", completing="complete upload", key=key, where=key,
            create=create, send_parts=send_parts, conditions=when,
        )

    def _head_source(self, src_key: str, src_etag: str | None) -> Any:
        # Pinned to the planned version: a source changed since the plan fails with 412 here.
        pin = conditions(if_match=src_etag)
        return self._on("copy", src_key, self.client.head_object, src_key, **pin)

    def copy(
        self, src_key: str, dst_key: str, *, md5: str | None, src_etag: str | None = None,
        if_match: str | None = None, if_absent: bool = False,
    ) -> Entry:
        when = conditions(if_match=if_match, if_absent=if_absent)
        kwargs: dict[str, Any] = conditions(if_match=if_match, if_absent=if_absent, src_etag=src_etag)
        if md5 is not None:
            # REPLACE would drop the object's other metadata and its Content-Type: carry them over.
            kwargs.update(kept_headers(self._head_source(src_key, src_etag), md5))
            kwargs["MetadataDirective"] = "REPLACE"
        try:
            response = self._on(
                "copy",
                f"{src_key} => {dst_key}",
                self.client.copy_object,
                dst_key,
                CopySource={"Bucket": self.bucket, "Key": src_key},
                **kwargs,
            )
        except PermanentStoreError as exc:
            if not copy_too_large(exc):
                raise
            return self._multipart_copy(src_key, dst_key, md5=md5, src_etag=src_etag, when=when)
        etag = unquoted(response.get("CopyObjectResult", {}).get("ETag"))
        entry = self.stat(dst_key)
        return Entry(key=dst_key, size=entry.size if entry else 0, md5=md5, etag=etag)

    def _multipart_copy(
        self, src_key: str, dst_key: str, *, md5: str | None, src_etag: str | None, when: dict[str, str]
    ) -> Entry:
        """Server-side copy in ranged parts, for sources over CopyObject's 5 GiB limit. No byte comes here."""
        where = f"{src_key} => {dst_key}"
        head = self._head_source(src_key, src_etag)
        size = int(head.get("ContentLength", 0))
        # Every part reads the version the HEAD saw, or the copy fails with 412.
        pin = conditions(src_etag=src_etag or unquoted(head.get("ETag")))
        part_size = max(self.copy_part_size, -(-size // MAX_PARTS))
        ranges = [(n, start, min(start + part_size, size) - 1) for n, start in enumerate(range(0, size, part_size), 1)]

        def send_parts(upload_id: str) -> Parts:
            def one(part: tuple[int, int, int]) -> dict[str, Any]:
                number, first, last = part
                result = self._on(
                    "copy part",
                    where,
                    self.client.upload_part_copy,
                    dst_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": src_key},
                    CopySourceRange=f"bytes={first}-{last}",
                    **pin,
                )
                return {"ETag": result["CopyPartResult"]["ETag"], "PartNumber": number}

            with ThreadPoolExecutor(max_workers=self.part_concurrency, thread_name_prefix="pixel-copy") as pool:
                return list(pool.map(one, ranges)), {}

        etag = multipart(
            self._journal, self.client, action="copy", completing="copy", key=dst_key, where=where,
            create=kept_headers(head, md5), send_parts=send_parts, conditions=when,
        )
        return Entry(key=dst_key, size=size, md5=md5, etag=etag)

    def journaled_uploads(self) -> tuple[JournaledUpload, ...]:
        """The multipart uploads pixel recorded in this bucket and has not finished: a killed apply's leftovers
        when read under the apply lock. Uploads without a record (other tools') are never among them."""
        return outermost(self._journal.uploads)

    def abort_journaled(self, upload: JournaledUpload) -> bool:
        """Abort a recorded upload and remove its record. False when it was no longer in progress
        (completed or aborted before its record could be removed): then only the record goes."""
        return outermost(lambda: self._journal.abort(upload))

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        self._on("delete", key, self.client.delete_object, key, **conditions(if_match=if_match))


class _ResumingReader:
    """An object's body, streamed; a dropped connection resumes with a ranged GET where it broke.

    The resumed request carries If-Match on the first response's ETag, so the
    bytes after the break come from the same version of the object as those
    before it (412 otherwise). Memory is one read's worth, whatever the size.
    """

    def __init__(
        self, store: S3Store, key: str, *, resumes: int = 5, etag: str | None = None, start: int = 0,
        stop: int | None = None,
    ) -> None:
        self._store = store
        self._key = key
        self._resumes = resumes
        self._position = start
        self._stop = stop  # a ranged read ends here (exclusive)
        self._etag: str | None = etag
        self._body: Any = None
        self._open_at(start)

    def _open_at(self, position: int) -> None:
        kwargs: dict[str, Any] = conditions(if_match=self._etag)
        if position or self._stop is not None:
            kwargs["Range"] = f"bytes={position}-{'' if self._stop is None else self._stop - 1}"
        s = self._store
        raw = s._raw if s._client is None else None
        if raw is not None:
            # The direct path where the store has one without botocore: a loader reading a thousand shards
            # spent more of its time in botocore's request machinery than in decoding records.
            headers = as_headers(conditions(if_match=self._etag))
            if "Range" in kwargs:
                headers["Range"] = kwargs["Range"]
            streamed = outermost(lambda: raw_call("download", self._key, raw.get_object, self._key, headers))
            self._etag = self._etag or str(streamed.headers.get("ETag", "")) or None
            self._body = streamed
            return
        response = outermost(
            lambda: call("download", self._key, s.client.get_object, Bucket=s.bucket, Key=self._key, **kwargs)
        )
        self._etag = self._etag or response.get("ETag")
        self._body = response["Body"]

    def read(self, n: int = -1) -> bytes:
        while True:
            try:
                data = cast(bytes, self._body.read(n if n >= 0 else None))
            except Exception as exc:
                err = translate_raw(exc, key=self._key, action="download")  # botocore's errors too
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


class _PartBuffers:
    """Part-sized buffers, reused from part to part and upload to upload: a fresh 8 MiB per part costs an
    allocation and two thousand page faults. At most `slots` exist at once (taken or kept), and none is
    kept once no upload is under way, so an idle store holds no part memory."""

    def __init__(self, slots: int) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._kept: list[bytearray] = []
        self._uploads = 0

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """While an upload takes buffers: the last upload to finish lets the kept ones go."""
        with self._lock:
            self._uploads += 1
        try:
            yield
        finally:
            with self._lock:
                self._uploads -= 1
                if not self._uploads:
                    self._kept.clear()

    def take(self, size: int) -> bytearray:
        """A buffer of `size` bytes (its old content left in it), once one of the slots is free."""
        self._slots.acquire()
        with self._lock:
            while self._kept:
                buffer = self._kept.pop()
                if len(buffer) == size:
                    return buffer
        return bytearray(size)

    def give_back(self, buffer: bytearray) -> None:
        with self._lock:
            if self._uploads:
                self._kept.append(buffer)
        self._slots.release()


def _failed(future: Future[Any]) -> bool:
    return not future.cancelled() and future.exception() is not None


class _Users:
    """Calls `release` once `count` users have said they are done."""

    def __init__(self, count: int, release: Callable[[], None]) -> None:
        self._count = count
        self._release: Callable[[], None] | None = release
        self._lock = threading.Lock()

    def done(self, _: object = None) -> None:
        with self._lock:
            self._count -= 1
            # Dropped once called: a finished future keeps its callbacks, and this one holds a part's buffer.
            release, self._release = (self._release, None) if self._count == 0 else (None, self._release)
        if release is not None:
            release()


class _ViewReader(io.RawIOBase):
    """A read-only, seekable stream over a buffer, without copying it (io.BytesIO would)."""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, into: Any) -> int:
        chunk = self._view[self._position : self._position + len(into)]
        into[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def __len__(self) -> int:
        return len(self._view)


def _read_into(body: BinaryIO, buffer: bytearray) -> int:
    """Fill `buffer` unless the stream ends first; the bytes read. Every part but the last must be full-sized."""
    view = memoryview(buffer)
    got = 0
    readinto = getattr(body, "readinto", None)
    while got < len(buffer):
        if readinto is not None:
            n = readinto(view[got:])
        else:
            more = body.read(len(buffer) - got)
            n = len(more)
            view[got : got + n] = more
        if not n:
            break
        got += n
    return got


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
