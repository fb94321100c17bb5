"""An S3 bucket as a Store. The only module that imports boto3.

Change detection needs each object's md5. The listing gives it for free when
the ETag is a plain md5 (single-part upload, no SSE-KMS); otherwise the md5
pixel recorded in metadata is read with one HEAD, and failing that the entry
carries md5=None so the planner can schedule a rehash.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import boto3
import botocore.exceptions
from botocore.config import Config

from reconciler.model import Entry, S3StoreSpec
from reconciler.stores.base import (
    ObjectChanged,
    OpenSource,
    PermanentStoreError,
    StoreError,
    TransientStoreError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MD5_META = "md5"  # sent as x-amz-meta-md5
RCLONE_MD5_META = "md5chksum"  # rclone's: base64 of the raw digest
_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")
MIB = 1024 * 1024

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

_NETWORK_ERRORS: tuple[type[Exception], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
)


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
    if isinstance(exc, _NETWORK_ERRORS):
        return TransientStoreError(f"{action} {key}: {type(exc).__name__}: {exc}", code="Network", key=key)
    if isinstance(exc, StoreError):
        return exc
    return PermanentStoreError(f"{action} {key}: {type(exc).__name__}: {exc}", key=key)


def make_client(spec: S3StoreSpec, *, max_pool_connections: int = 32, max_attempts: int = 5) -> S3Client:
    session = boto3.session.Session(profile_name=spec.profile) if spec.profile else boto3.session.Session()
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
    return session.client("s3", endpoint_url=spec.endpoint, config=config)


class S3Store:
    def __init__(
        self,
        spec: S3StoreSpec,
        client: S3Client | None = None,
        *,
        multipart_threshold: int = 64 * MIB,
        part_size: int = 16 * MIB,
        max_pool_connections: int = 32,
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self.bucket = spec.bucket
        self.client: S3Client = client or make_client(spec, max_pool_connections=max_pool_connections)
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size

    def _call(self, action: str, key: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except Exception as exc:
            raise translate(exc, key=key, action=action) from exc

    def check_bucket(self) -> None:
        """Fail early, and clearly, when the bucket is missing or unreachable."""
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

    def list(self, prefix: str) -> Iterator[Entry]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):  # folder placeholder objects hold no data
                        continue
                    etag = obj.get("ETag", "").strip('"')
                    md5 = md5_from_etag(etag)
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
        md5 = md5_from_metadata(head.get("Metadata", {})) or md5_from_etag(etag)
        mtime = head.get("LastModified")
        return Entry(
            key=key,
            size=int(head.get("ContentLength", 0)),
            md5=md5,
            mtime_ns=int(mtime.timestamp() * 1e9) if mtime else None,
            etag=etag,
        )

    @contextlib.contextmanager
    def _open(self, key: str) -> Iterator[BinaryIO]:
        response = self._call("download", key, self.client.get_object, Bucket=self.bucket, Key=key)
        body = response["Body"]
        try:
            yield cast(BinaryIO, _TranslatingReader(body, key))
        finally:
            body.close()

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        return self._open(key)

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
            with source() as body:
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
                    **conditions,
                )
            etag = str(response.get("ETag", "")).strip('"')
        else:
            etag = self._multipart_upload(key, source, size=size, md5=md5, conditions=conditions)
        return Entry(key=key, size=size, md5=md5, etag=etag)

    def _multipart_upload(
        self, key: str, source: OpenSource, *, size: int, md5: str, conditions: dict[str, str]
    ) -> str:
        created = self._call(
            "upload",
            key,
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            Metadata={MD5_META: md5},
        )
        upload_id = created["UploadId"]
        parts: list[dict[str, Any]] = []
        digest = hashlib.md5()
        try:
            with source() as body:
                number = 1
                # One part in memory at a time: memory is bounded by part_size, not file size.
                while chunk := body.read(self.part_size):
                    digest.update(chunk)
                    part = self._call(
                        "upload part",
                        key,
                        self.client.upload_part,
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                        ContentMD5=base64.b64encode(hashlib.md5(chunk).digest()).decode(),
                    )
                    parts.append({"ETag": part["ETag"], "PartNumber": number})
                    number += 1
                    del chunk
            if digest.hexdigest() != md5:
                raise PermanentStoreError(
                    f"upload {key}: the local file changed while it was read (md5 {digest.hexdigest()} "
                    f"!= planned {md5}); nothing was written",
                    code="BadDigest",
                    key=key,
                )
            done = self._call(
                "complete upload",
                key,
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": cast(Any, parts)},
                **conditions,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
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
            kwargs["Metadata"] = {MD5_META: md5}
            kwargs["MetadataDirective"] = "REPLACE"
        response = self._call(
            "copy",
            f"{src_key} => {dst_key}",
            self.client.copy_object,
            Bucket=self.bucket,
            Key=dst_key,
            CopySource={"Bucket": self.bucket, "Key": src_key},
            **kwargs,
        )
        result = response.get("CopyObjectResult", {})
        etag = str(result.get("ETag", "")).strip('"')
        entry = self.stat(dst_key)
        size = entry.size if entry else 0
        return Entry(key=dst_key, size=size, md5=md5, etag=etag)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if if_match is not None:
            kwargs["IfMatch"] = f'"{if_match}"'
        self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=key, **kwargs)


class _TranslatingReader:
    """A body whose network failures surface as StoreErrors the executor can retry."""

    def __init__(self, body: Any, key: str) -> None:
        self._body = body
        self._key = key

    def read(self, n: int = -1) -> bytes:
        try:
            return cast(bytes, self._body.read(n if n >= 0 else None))
        except Exception as exc:
            raise translate(exc, key=self._key, action="download") from exc

    def close(self) -> None:
        self._body.close()
