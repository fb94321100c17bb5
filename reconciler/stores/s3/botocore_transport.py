"""The botocore transport: S3Store's requests through a botocore client; and botocore deciding for the direct one.

A client the caller injects (a test double, moto's in-process mock) is used as it is, every request
through it. Where the spec and plain keys do not say where to send and how to sign (`direct()` answers
None: SSO, assume-role, IMDS, an endpoint botocore's rules place), `botocore_decided` lets botocore decide
once: the bucket's HEAD goes through its client (its redirects, its errors), every other request through a
direct transport sent where botocore would send, signed with its provider chain's credentials.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from reconciler.model import S3StoreSpec
from reconciler.stores.base import PermanentStoreError, StoreError
from reconciler.stores.s3.credentials import env_credentials
from reconciler.stores.s3.deadlines import deadlines
from reconciler.stores.s3.direct.raw import direct, through_botocore
from reconciler.stores.s3.errors import status_of, translate
from reconciler.stores.s3.lazy import lazy
from reconciler.stores.s3.objects import unquoted
from reconciler.stores.s3.transport import Buffer, Download, Head, Page, Params, Transport

if TYPE_CHECKING:
    import boto3
    import botocore.exceptions
    import botocore.session
    from mypy_boto3_s3 import S3Client
else:
    # Imported when first used: a store on the plain direct transport never does.
    boto3 = lazy("boto3")
    botocore = lazy("botocore")


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


def botocore_decided(spec: S3StoreSpec, pool_size: int) -> tuple[Transport, Transport]:
    """(the transport that checks the bucket, the one that sends everything else), both decided by botocore:
    its client for the HEAD, and the direct transport sent where it would send, with its credentials.

    The botocore transport for both where there are no credentials (its first request raises botocore's
    clear NoCredentials error) or botocore's endpoint cannot be read off a presigned URL."""
    session = make_session(spec)
    checking = BotocoreTransport(make_client(spec, session=session, max_pool_connections=pool_size), spec.bucket)
    credentials = session.get_credentials()  # botocore's provider chain; refreshable ones refresh
    if credentials is None:
        return checking, checking
    try:
        limits = deadlines(spec)
        sending = through_botocore(
            checking.client, credentials.get_frozen_credentials, spec.bucket,
            pool_size=pool_size, connect_timeout=limits.connect, read_timeout=limits.read,
        )
    except (ValueError, botocore.exceptions.BotoCoreError):
        return checking, checking
    return checking, sending


def transports(
    spec: S3StoreSpec, client: S3Client | None, pool_size: int
) -> tuple[Transport, Transport, Callable[[], tuple[Transport, Transport]] | None]:
    """(the transport that checks the bucket, the one that sends every other request, botocore's decision to
    fall back on when the bucket does not answer the first pair): an injected client sends everything; else
    the direct transport where the spec and plain keys decide, botocore deciding where they do not."""
    if client is not None:
        injected = BotocoreTransport(client, spec.bucket)
        return injected, injected, None
    plain = direct(spec, pool_size=pool_size)
    if plain is not None:
        return plain, plain, functools.partial(botocore_decided, spec, pool_size)
    checking, sending = botocore_decided(spec, pool_size)
    return checking, sending, None


class BotocoreTransport:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        self.server: str | None = None

    def translate(self, exc: Exception, *, key: str, action: str) -> StoreError:
        return translate(exc, key=key, action=action)

    def _on(self, key: str) -> dict[str, Any]:
        return {"Bucket": self.bucket, "Key": key}

    def _saw(self, response: Any) -> None:
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        self.server = str(headers.get("server", ""))

    def head_bucket(self) -> int:
        try:
            response = self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            self._saw(exc.response)
            return status_of(exc)
        self._saw(response)
        return 200

    def bucket_encryption(self) -> frozenset[str] | None:
        try:
            rules = self.client.get_bucket_encryption(Bucket=self.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        except Exception:
            return None  # no default encryption configured, or an endpoint without the API
        return frozenset(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") or "" for r in rules)

    def list_page(self, prefix: str, params: Params) -> Page:
        page = cast(Page, self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, **params))
        if self.server is None:
            self._saw(page)
        return page

    def head_object(self, key: str, params: Params) -> Head | None:
        try:
            return cast(Head, self.client.head_object(**self._on(key), **params))
        except botocore.exceptions.ClientError as exc:
            if status_of(exc) == 404:
                return None
            raise

    def get_object(self, key: str, params: Params) -> Download:
        response = self.client.get_object(**self._on(key), **params)
        return Download(response["Body"], response.get("ETag"))

    def put_object(self, key: str, body: bytes | BinaryIO, size: int, params: Params) -> str:
        response = self.client.put_object(**self._on(key), Body=body, ContentLength=size, **params)
        return unquoted(response.get("ETag"))

    def copy_object(self, src_key: str, dst_key: str, params: Params) -> str:
        source: Any = {"Bucket": self.bucket, "Key": src_key}
        response = self.client.copy_object(**self._on(dst_key), CopySource=source, **params)
        return unquoted(response.get("CopyObjectResult", {}).get("ETag"))

    def delete_object(self, key: str, params: Params) -> None:
        self.client.delete_object(**self._on(key), **params)

    def create_multipart_upload(self, key: str, params: Params) -> str:
        return str(self.client.create_multipart_upload(**self._on(key), **params)["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, body: Buffer, params: Params) -> str:
        from reconciler.stores.s3.upload import ViewReader

        # A stream over the buffer, not bytes: a copy would double each part in memory.
        view: Any = ViewReader(memoryview(body))
        part = self.client.upload_part(**self._on(key), UploadId=upload_id, PartNumber=number, Body=view, **params)
        return str(part["ETag"])

    def upload_part_copy(
        self, src_key: str, dst_key: str, upload_id: str, number: int, first: int, last: int, params: Params
    ) -> str:
        result = self.client.upload_part_copy(
            **self._on(dst_key), UploadId=upload_id, PartNumber=number,
            CopySource={"Bucket": self.bucket, "Key": src_key}, CopySourceRange=f"bytes={first}-{last}", **params,
        )
        return str(result["CopyPartResult"]["ETag"])

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[dict[str, Any]], params: Params
    ) -> str:
        done = self.client.complete_multipart_upload(
            **self._on(key), UploadId=upload_id, MultipartUpload={"Parts": cast(Any, parts)}, **params
        )
        return unquoted(done.get("ETag"))

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(**self._on(key), UploadId=upload_id)

    def has_parts(self, key: str, upload_id: str) -> bool:
        return bool(self.client.list_parts(**self._on(key), UploadId=upload_id, MaxParts=1).get("Parts"))

    def multipart_uploads(self, prefix: str) -> list[dict[str, Any]]:
        listed = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return [cast(dict[str, Any], item) for item in listed.get("Uploads", [])]

    def warm(self, connections: int) -> None:
        """botocore's pool opens its connections as requests need them."""

    def close(self) -> None:
        """botocore's connections close with the client."""
