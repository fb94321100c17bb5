"""The two requests pixel sends by the thousand, sent without botocore's per-request machinery.

A PutObject of a small file costs about 1.9 ms of CPU through botocore (parameter
validation, two dozen event handlers, a user-agent string rebuilt per call,
response parsing) and 0.8 ms signed and sent directly; a ListObjectsV2 page
likewise. With the GIL that CPU is the upload rate of a tree of small files, and
most of a no-op plan.

A big file's parts go here too (`upload_part`): botocore signs a part's payload with
SHA-256 over plain HTTP, one more pass over every byte on each side of a loopback
link that shares two cores, where the part's signed Content-MD5 or CRC64NVME header
is already the check the server enforces.

Where a request for this bucket goes and the credentials it is signed with are
decided here without botocore when they are plain (`direct()`: the spec's endpoint
with path or virtual addressing, or the documented regional AWS endpoint; static
keys read by stores/s3/credentials.py): a warm no-op plan then never imports it.
Otherwise botocore decides them (`through_botocore()`: read off a presigned URL
it generates, so endpoint resolution, addressing style and region are its; its
provider chain, refreshed as it refreshes). The signature is SigV4
(stores/s3/direct/sigv4.py, checked against botocore's in the tests). Errors come back
as botocore ClientErrors (botocore is imported then), so `translate()` classifies
them as it does every other failure. S3Store uses this only with a client it
built itself or none: an injected client (a test double, moto's in-process
mock) keeps the plain path.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar

from reconciler.model import S3StoreSpec
from reconciler.stores.s3.credentials import static_access
from reconciler.stores.s3.deadlines import deadlines
from reconciler.stores.s3.direct.http_pool import NETWORK_ERRORS, ConnectionPool, DeadlineExceeded, Response, Streamed
from reconciler.stores.s3.direct.sigv4 import EMPTY_SHA256, sign
from reconciler.stores.s3.listing import parse_list_objects_v2

if TYPE_CHECKING:
    import botocore.exceptions
    from mypy_boto3_s3 import S3Client

_PROBE = "pixel-probe-key"
# A body in memory, sent as it is (a part: a view into a reused buffer, never copied into bytes).
Buffer = bytes | bytearray | memoryview
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_Answer = TypeVar("_Answer", Response, Streamed)
# The regions of the standard `aws` partition, whose S3 endpoints are s3.REGION.amazonaws.com
# (https://docs.aws.amazon.com/general/latest/gr/s3.html); China, GovCloud and the isolated
# partitions are left to botocore's endpoint rules.
_AWS_REGION = re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d+$")
# Virtual-hosted addressing needs a bucket name that is one DNS label (no dots: TLS wildcard certificates).
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class Credentials(Protocol):
    """botocore's ReadOnlyCredentials, or stores/s3/credentials.py's StaticCredentials."""

    @property
    def access_key(self) -> str | None: ...
    @property
    def secret_key(self) -> str | None: ...
    @property
    def token(self) -> str | None: ...


def direct_base(spec: S3StoreSpec, region: str | None) -> str | None:
    """The URL (ending in "/") a key of the bucket is appended to, when it follows from the spec alone.

    None where botocore's endpoint rules would have more to say: `auto` addressing on a custom
    endpoint, an AWS region outside the standard partition, a bucket name not fit for a host name.
    """
    bucket = urllib.parse.quote(spec.bucket, safe="")
    if spec.endpoint:
        parts = urllib.parse.urlsplit(spec.endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            return None
        path = parts.path.rstrip("/")
        if spec.addressing_style == "path":
            return f"{parts.scheme}://{parts.netloc}{path}/{bucket}/"
        if spec.addressing_style == "virtual" and _DNS_BUCKET.match(spec.bucket):
            return f"{parts.scheme}://{spec.bucket}.{parts.netloc}{path}/"
        return None
    if region is None or not _AWS_REGION.match(region):
        return None
    host = f"s3.{region}.amazonaws.com"
    if spec.addressing_style == "path":
        return f"https://{host}/{bucket}/"
    if _DNS_BUCKET.match(spec.bucket):
        return f"https://{spec.bucket}.{host}/"
    return None


class RawS3:
    def __init__(
        self,
        base: str,
        region: str,
        credentials: Callable[[], Credentials | None],
        *,
        pool_size: int,
        connect_timeout: float,
        read_timeout: float,
        attempts: int = 2,
    ) -> None:
        self.base = base  # ends with "/"
        self.region = region
        self.server: str | None = None  # the Server header HeadBucket answered with: it tells the listing order
        self._credentials = credentials
        self._attempts = attempts
        where = urllib.parse.urlsplit(self.base)
        self._pool = ConnectionPool(
            where.scheme, where.netloc, size=pool_size, connect_timeout=connect_timeout, read_timeout=read_timeout
        )

    def _signed(self, method: str, url: str, headers: Mapping[str, str], payload: str) -> dict[str, str]:
        frozen = self._credentials()
        if frozen is None or not frozen.access_key or not frozen.secret_key:
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError()
        return sign(
            method,
            url,
            headers,
            payload_sha256=payload,
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            token=frozen.token,
            region=self.region,
        )

    def _send(
        self,
        operation: str,
        method: str,
        url: str,
        body: Buffer | BinaryIO | None,
        headers: Mapping[str, str],
        *,
        refuse: bool = True,
        unsigned: bool = False,
    ) -> Response:
        """The response; a status of 300 or more raises a ClientError unless `refuse` is False.

        Only a dropped connection is sent again (`_attempt`); throttling and 5xx go up as they are, to the
        one retry layer (stores/retry.py) with its backoff.

        `unsigned`: the payload is not hashed into the signature. For a body whose Content-MD5 or CRC64NVME
        header (both signed) the server checks the bytes against: SHA-256 over them would cost the client
        and the server each another pass for no more safety.
        """
        stream = None if body is None or isinstance(body, Buffer) else body
        start = 0
        if stream is not None:
            # A streamed body is not read an extra time to hash it: as `unsigned`.
            payload, start = UNSIGNED_PAYLOAD, stream.tell()
        elif unsigned:
            payload = UNSIGNED_PAYLOAD
        else:
            payload = hashlib.sha256(body).hexdigest() if isinstance(body, Buffer) and body else EMPTY_SHA256

        def exchange(target: str, signed: Mapping[str, str]) -> Response:
            if stream is not None:
                stream.seek(start)
            return self._pool.request(method, target, body=body, headers=signed)

        response = self._attempt(method, url, headers, payload, exchange)
        if response.status >= 300 and refuse:
            raise _client_error(operation, response)
        return response

    def _attempt(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        payload: str,
        exchange: Callable[[str, Mapping[str, str]], _Answer],
    ) -> _Answer:
        """`exchange(target, signed headers)`, sent again at once only when the connection dropped.

        The one attempt loop of the direct path: whole responses (`_send`) and streamed ones (`get_object`)
        differ only in the exchange. `attempts` in all; a kept-alive connection the server closed is the
        usual cause, and throttling and 5xx are left to the retry layer (stores/retry.py) above.
        """
        parts = urllib.parse.urlsplit(url)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        for attempt in range(1, self._attempts + 1):
            signed = self._signed(method, url, headers, payload)  # again on each attempt: X-Amz-Date moves on
            try:
                return exchange(target, signed)
            except DeadlineExceeded:
                raise  # the server is there and silent: waiting the deadline out again would only double it
            except NETWORK_ERRORS:
                if attempt == self._attempts:
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def put(self, key: str, body: bytes | BinaryIO, size: int, headers: Mapping[str, str]) -> str:
        """PutObject of `size` bytes (a seekable stream is sent from where it stands); the ETag, unquoted."""
        url = self.base + urllib.parse.quote(key, safe="/~")
        response = self._send("PutObject", "PUT", url, body, {**headers, "Content-Length": str(size)})
        return str(response.headers.get("ETag", "")).strip('"')

    def get_object(self, key: str, headers: Mapping[str, str]) -> Streamed:
        """GetObject, its body streamed; a status of 300 or more raises a ClientError (412 for If-Match)."""
        url = self.base + urllib.parse.quote(key, safe="/~")
        response = self._attempt(
            "GET", url, headers, EMPTY_SHA256, lambda target, signed: self._pool.stream("GET", target, headers=signed)
        )
        if response.status >= 300:
            error = Response(response.status, response.reason, response.headers, response.read())
            raise _client_error("GetObject", error)
        return response

    def upload_part(self, key: str, upload_id: str, number: int, body: Buffer, headers: Mapping[str, str]) -> str:
        """UploadPart of `body`, unsigned: `headers` must carry the part's Content-MD5 or CRC64NVME.

        The part's ETag as the server gave it (quoted), which CompleteMultipartUpload lists."""
        query = urllib.parse.urlencode(
            {"partNumber": str(number), "uploadId": upload_id}, quote_via=urllib.parse.quote, safe="-_.~"
        )
        url = self.base + urllib.parse.quote(key, safe="/~") + "?" + query
        sized = {**headers, "Content-Length": str(memoryview(body).nbytes)}
        response = self._send("UploadPart", "PUT", url, body, sized, unsigned=True)
        etag = response.headers.get("ETag")
        if not etag:
            raise ValueError(f"UploadPart of {key} part {number}: the response has no ETag")
        return str(etag)

    def _get(self, operation: str, query: Mapping[str, str], *, refuse: bool = True) -> Response:
        url = self.base + "?" + urllib.parse.urlencode(sorted(query.items()), quote_via=urllib.parse.quote)
        return self._send(operation, "GET", url, None, {}, refuse=refuse)

    def head_bucket(self) -> int:
        """The status of HeadBucket, whatever it is: the caller decides what a failure means."""
        response = self._send("HeadBucket", "HEAD", self.base, None, {}, refuse=False)
        self.server = str(response.headers.get("Server", ""))
        return response.status

    def encryption_algorithms(self) -> frozenset[str] | None:
        """The bucket's default-encryption algorithms; None when it has none or the endpoint lacks the API."""
        try:
            # No default encryption is a 404 (ServerSideEncryptionConfigurationNotFoundError): not an error here.
            response = self._get("GetBucketEncryption", {"encryption": ""}, refuse=False)
            if response.status != 200:
                return None
            root = ET.fromstring(response.data)
        except Exception:
            return None
        return frozenset(node.text or "" for node in root.iter() if node.tag.rpartition("}")[2] == "SSEAlgorithm")

    def list_pages(
        self,
        prefix: str,
        start_after: str | None = None,
        delimiter: str | None = None,
        *,
        fetch: Callable[[Callable[[], Response]], Response] = lambda send: send(),
    ) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages, shaped like botocore's (keys decoded, Size an int, LastModified a datetime).

        Each page's request is sent through `fetch` (the caller's retry layer, say)."""
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
            if token:
                query["continuation-token"] = token
            elif start_after is not None:
                query["start-after"] = start_after
            if delimiter is not None:
                query["delimiter"] = delimiter
            page = parse_list_objects_v2(fetch(functools.partial(self._get, "ListObjectsV2", query)).data)
            for item in page.get("Contents", []):
                item["Key"] = urllib.parse.unquote_plus(item["Key"])
            for item in page.get("CommonPrefixes", []):
                item["Prefix"] = urllib.parse.unquote_plus(item["Prefix"])
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def warm(self, connections: int) -> None:
        self._pool.warm(connections)

    def close(self) -> None:
        self._pool.close()


def direct(spec: S3StoreSpec, *, pool_size: int, env: Mapping[str, str] | None = None) -> RawS3 | None:
    """The direct path with no botocore at all, or None where botocore must decide endpoint or credentials."""
    env = os.environ if env is None else env
    access = static_access(spec, env)
    if access is None:
        return None
    region = access.region or ("us-east-1" if spec.endpoint else None)  # botocore signs custom endpoints so
    base = direct_base(spec, region)
    if base is None or region is None:
        return None
    credentials = access.credentials
    limits = deadlines(spec, env)
    return RawS3(
        base, region, lambda: credentials, pool_size=pool_size, connect_timeout=limits.connect, read_timeout=limits.read
    )


def through_botocore(
    client: S3Client,
    credentials: Callable[[], Credentials | None],
    bucket: str,
    *,
    pool_size: int,
    connect_timeout: float,
    read_timeout: float,
) -> RawS3:
    """The direct path sent where botocore would send it (read off a presigned URL), with its credentials."""
    probe = urllib.parse.urlsplit(
        client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": _PROBE}, ExpiresIn=60)
    )
    if not probe.path.endswith("/" + _PROBE):
        raise ValueError(f"unexpected presigned URL shape: {probe.path}")
    base = f"{probe.scheme}://{probe.netloc}{probe.path[: -len(_PROBE)]}"
    region = client.meta.region_name or "us-east-1"
    return RawS3(
        base, region, credentials, pool_size=pool_size, connect_timeout=connect_timeout, read_timeout=read_timeout
    )


def _client_error(operation: str, response: Response) -> botocore.exceptions.ClientError:
    from botocore.exceptions import ClientError

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
    return ClientError(error, operation)  # type: ignore[arg-type]
