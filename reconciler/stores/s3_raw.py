"""The two requests pixel sends by the thousand, sent without botocore's per-request machinery.

A PutObject of a small file costs about 1.9 ms of CPU through botocore (parameter
validation, two dozen event handlers, a user-agent string rebuilt per call,
response parsing) and 0.8 ms signed and sent directly; a ListObjectsV2 page
likewise. With the GIL that CPU is the upload rate of a tree of small files, and
most of a no-op plan.

Only the sending is done here. botocore still decides where a request for this
bucket goes (read off a presigned URL it generates, so endpoint resolution,
addressing style and region are its) and the credentials (its provider chain,
refreshed as it refreshes them); the signature is SigV4 (stores/s3_sigv4.py,
checked against botocore's in the tests). Errors
come back as botocore ClientErrors, so `translate()` classifies them as it does
every other failure. S3Store uses this only with a client it built itself: an
injected client (a test double, moto's in-process mock) keeps the plain path.
"""

from __future__ import annotations

import hashlib
import random
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

import botocore.exceptions
from botocore.credentials import ReadOnlyCredentials

from reconciler.stores.http_pool import NETWORK_ERRORS, ConnectionPool, Response
from reconciler.stores.s3_client import parse_list_objects_v2
from reconciler.stores.s3_sigv4 import EMPTY_SHA256, sign

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_PROBE = "pixel-probe-key"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BASE_BACKOFF_S, MAX_BACKOFF_S = 0.1, 20.0
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


class RawS3:
    def __init__(
        self,
        client: S3Client,
        credentials: Callable[[], ReadOnlyCredentials | None],
        bucket: str,
        *,
        pool_size: int,
        connect_timeout: float = 10,
        read_timeout: float = 120,
        attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        probe = urllib.parse.urlsplit(
            client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": _PROBE}, ExpiresIn=60)
        )
        if not probe.path.endswith("/" + _PROBE):
            raise ValueError(f"unexpected presigned URL shape: {probe.path}")
        self.base = f"{probe.scheme}://{probe.netloc}{probe.path[: -len(_PROBE)]}"  # ends with "/"
        self.region = client.meta.region_name or "us-east-1"
        self._credentials = credentials
        self._attempts = attempts
        self._sleep = sleep
        base = urllib.parse.urlsplit(self.base)
        self._pool = ConnectionPool(
            base.scheme, base.netloc, size=pool_size, connect_timeout=connect_timeout, read_timeout=read_timeout
        )

    def _send(
        self, operation: str, method: str, url: str, body: bytes | BinaryIO | None, headers: Mapping[str, str]
    ) -> Response:
        # botocore's standard retry mode, which the plain path gets from the client: throttling, 5xx and
        # dropped connections are tried again (a listing has no executor around it to retry it).
        if isinstance(body, bytes | None):
            payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        else:
            # A streamed body is not read an extra time to hash it: Content-MD5 and the CRC64NVME header,
            # both signed, are what the server checks the bytes against.
            payload, start = UNSIGNED_PAYLOAD, body.tell()
        for attempt in range(1, self._attempts + 1):
            if not isinstance(body, bytes | None):
                body.seek(start)
            frozen = self._credentials()
            if frozen is None or not frozen.access_key or not frozen.secret_key:
                raise botocore.exceptions.NoCredentialsError()
            signed = sign(  # again on each attempt: X-Amz-Date moves on
                method,
                url,
                headers,
                payload_sha256=payload,
                access_key=frozen.access_key,
                secret_key=frozen.secret_key,
                token=frozen.token,
                region=self.region,
            )
            try:
                target = urllib.parse.urlsplit(url)
                response = self._pool.request(
                    method, f"{target.path}?{target.query}" if target.query else target.path, body=body, headers=signed
                )
            except NETWORK_ERRORS:
                if attempt == self._attempts:
                    raise
                self._sleep(self._backoff(attempt))
                continue
            if response.status in RETRY_STATUSES and attempt < self._attempts:
                self._sleep(self._backoff(attempt))
                continue
            if response.status >= 300:
                raise _client_error(operation, response)
            return response
        raise AssertionError("unreachable")  # the loop returns or raises

    def _backoff(self, attempt: int) -> float:
        return random.random() * min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2.0**attempt)

    def put(self, key: str, body: bytes | BinaryIO, size: int, headers: Mapping[str, str]) -> str:
        """PutObject of `size` bytes (a seekable stream is sent from where it stands); the ETag, unquoted."""
        url = self.base + urllib.parse.quote(key, safe="/~")
        response = self._send("PutObject", "PUT", url, body, {**headers, "Content-Length": str(size)})
        return str(response.headers.get("ETag", "")).strip('"')

    def list_pages(self, prefix: str) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages, shaped like botocore's (keys decoded, Size an int, LastModified a datetime)."""
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
            if token:
                query["continuation-token"] = token
            url = self.base + "?" + urllib.parse.urlencode(sorted(query.items()), quote_via=urllib.parse.quote)
            page = parse_list_objects_v2(self._send("ListObjectsV2", "GET", url, None, {}).data)
            for item in page.get("Contents", []):
                item["Key"] = urllib.parse.unquote_plus(item["Key"])
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def close(self) -> None:
        self._pool.close()


def _client_error(operation: str, response: Response) -> botocore.exceptions.ClientError:
    code, message = str(response.status), response.reason or ""
    try:
        root = ET.fromstring(response.data) if response.data else None
    except ET.ParseError:
        root = None
    if root is not None:
        code = root.findtext("Code") or code
        message = root.findtext("Message") or message
    error = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": response.status, "HTTPHeaders": dict(response.headers)},
    }
    return botocore.exceptions.ClientError(error, operation)  # type: ignore[arg-type]
