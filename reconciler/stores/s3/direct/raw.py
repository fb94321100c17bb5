"""The direct transport: every request S3Store sends, signed (sigv4.py) and sent (http_pool.py) without botocore.

A PutObject of a small file costs about 1.9 ms of CPU through botocore (parameter
validation, two dozen event handlers, a user-agent string rebuilt per call,
response parsing) and 0.8 ms signed and sent directly; a ListObjectsV2 page
likewise. With the GIL that CPU is the upload rate of a tree of small files, and
most of a no-op plan. The rest (multipart create/complete/abort, copies, HEADs,
deletes, the upload journal's and the lock's requests) goes the same way, so that
an apply whose credentials are plain never imports botocore at all.

A big file's parts and every PutObject are sent unsigned (`upload_part`, `put_object`, `put_wire`):
botocore signs a payload with SHA-256 over plain HTTP, one more pass over every byte on each side of a
loopback link that shares two cores, where the body's signed Content-MD5 or CRC64NVME header is already
the check the server enforces (a small file's SHA-256 was ~10 us of its ~0.35 ms of client CPU).

Where a request for this bucket goes and the credentials it is signed with are
decided here without botocore when they are plain (`direct()`: the spec's endpoint
with path or virtual addressing, or the documented regional AWS endpoint; static
keys read by stores/s3/credentials.py). Otherwise botocore decides them
(`through_botocore()`: read off a presigned URL it generates, so endpoint
resolution, addressing style and region are its; its provider chain, refreshed as
it refreshes). The signature is SigV4 (stores/s3/direct/sigv4.py, checked against
botocore's in the tests). A refusal is an `S3Refusal` (stores/s3/errors.py) with the
server's status and code, which `translate_raw()` classifies as it does every other
failure.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar, cast

from reconciler.model import S3StoreSpec
from reconciler.stores.base import StoreError
from reconciler.stores.s3.conditions import HEADERS as CONDITION_HEADERS
from reconciler.stores.s3.credentials import static_access
from reconciler.stores.s3.deadlines import deadlines
from reconciler.stores.s3.direct.bulk import BulkSender, Endpoint, Wire
from reconciler.stores.s3.direct.http_pool import NETWORK_ERRORS, ConnectionPool, DeadlineExceeded, Response, Streamed
from reconciler.stores.s3.direct.sigv4 import EMPTY_SHA256, sign
from reconciler.stores.s3.errors import S3Refusal, translate_raw
from reconciler.stores.s3.listing import iso_timestamp, parse_list_objects_v2
from reconciler.stores.s3.objects import unquoted
from reconciler.stores.s3.transport import Buffer, Download, Head, Page, Params

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_PROBE = "pixel-probe-key"
_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
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


class DirectTransport:
    def __init__(
        self,
        base: str,
        region: str,
        credentials: Callable[[], Credentials | None],
        *,
        bucket: str,
        pool_size: int,
        connect_timeout: float,
        read_timeout: float,
        attempts: int = 2,
    ) -> None:
        self.base = base  # ends with "/"
        self.bucket = bucket
        self.region = region
        # The Server header HeadBucket or the first listing page answered with: it tells the listing order.
        self.server: str | None = None
        self._credentials = credentials
        self._attempts = attempts
        self._timeouts = (connect_timeout, read_timeout)
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
        """The response; a status of 300 or more raises an S3Refusal unless `refuse` is False.

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
        else:
            payload = _payload(cast(Buffer | None, body), unsigned=unsigned)

        def exchange(target: str, signed: Mapping[str, str]) -> Response:
            if stream is not None:
                stream.seek(start)
            return self._pool.request(method, target, body=body, headers=signed)

        response = self._attempt(method, url, headers, payload, exchange)
        if response.status >= 300 and refuse:
            raise refusal(operation, response)
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

        The one attempt loop of the direct transport: whole responses (`_send`) and streamed ones (`get_object`)
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

        # --- the Transport (stores/s3/transport.py) -------------------------------------------------------------

    def translate(self, exc: Exception, *, key: str, action: str) -> StoreError:
        return translate_raw(exc, key=key, action=action)

    def _url(self, key: str | None, query: Mapping[str, str] | None = None) -> str:
        url = self.base + ("" if key is None else urllib.parse.quote(key, safe="/~"))
        if query:
            # Kept in the order given: a fault proxy (tests/faults) matches "partNumber=2&".
            url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote, safe="-_.~")
        return url

    def _copy_source(self, key: str) -> str:
        return urllib.parse.quote(f"{self.bucket}/{key}", safe="/~")

    def put_object(self, key: str, body: bytes | BinaryIO, size: int, params: Params) -> str:
        """PutObject of `size` bytes (a seekable stream is sent from where it stands); the ETag, unquoted."""
        headers = _put_headers(params, size)
        sent = self._send("PutObject", "PUT", self._url(key), body, headers, refuse=False, unsigned=_checked(params))
        return put_answer(sent)

    def put_wire(self, key: str, body: bytes, params: Params) -> Wire:
        """The PutObject `put_object` would send for `body`, as bytes for a BulkSender: the same headers and
        signature, signed now (X-Amz-Date is now; S3 allows 15 minutes of skew, and it is sent at once)."""
        url = self._url(key)
        signed = self._signed("PUT", url, _put_headers(params, len(body)), _payload(body, unsigned=_checked(params)))
        target = urllib.parse.urlsplit(url).path
        head = f"PUT {target} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in signed.items())
        return Wire((head + "\r\n").encode("iso-8859-1"), body)

    def bulk_endpoint(self, sender: BulkSender[Any], connections: int) -> Endpoint[Any] | None:
        """`connections` connections to this endpoint within `sender` (direct/bulk.py); None over TLS."""
        where = urllib.parse.urlsplit(self.base)
        if where.scheme != "http" or where.hostname is None:
            return None
        return sender.endpoint(
            where.hostname, where.port or 80, connections=connections,
            connect_timeout=self._timeouts[0], read_timeout=self._timeouts[1],
        )

    def get_object(self, key: str, params: Params) -> Download:
        """GetObject, its body streamed; a status of 300 or more raises an S3Refusal (412 for If-Match)."""
        headers = headers_of(params)
        response = self._attempt(
            "GET", self._url(key), headers, EMPTY_SHA256,
            lambda target, signed: self._pool.stream("GET", target, headers=signed),
        )
        if response.status >= 300:
            raise refusal("GetObject", Response(response.status, response.reason, response.headers, response.read()))
        return Download(response, str(response.headers.get("ETag", "")) or None)

    def head_object(self, key: str, params: Params) -> Head | None:
        response = self._send("HeadObject", "HEAD", self._url(key), None, headers_of(params), refuse=False)
        if response.status == 404:
            return None
        if response.status >= 300:
            raise refusal("HeadObject", response)
        return head_of(response.headers)

    def copy_object(self, src_key: str, dst_key: str, params: Params) -> str:
        headers = {**headers_of(params), "x-amz-copy-source": self._copy_source(src_key)}
        response = self._send("CopyObject", "PUT", self._url(dst_key), None, headers)
        return unquoted(_text(_answer("CopyObject", response), "ETag"))

    def delete_object(self, key: str, params: Params) -> None:
        self._send("DeleteObject", "DELETE", self._url(key), None, headers_of(params))

    def create_multipart_upload(self, key: str, params: Params) -> str:
        response = self._send("CreateMultipartUpload", "POST", self._url(key, {"uploads": ""}), None,
                              headers_of(params))
        upload_id = _text(_answer("CreateMultipartUpload", response), "UploadId")
        if not upload_id:
            raise ValueError(f"CreateMultipartUpload of {key}: the response has no UploadId")
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, body: Buffer, params: Params) -> str:
        """UploadPart of `body`, unsigned: `params` must carry the part's ContentMD5 or ChecksumCRC64NVME.

        The part's ETag as the server gave it (quoted), which CompleteMultipartUpload lists."""
        url = self._url(key, {"partNumber": str(number), "uploadId": upload_id})
        sized = {**headers_of(params, sdk_checksum=True), "Content-Length": str(memoryview(body).nbytes)}
        response = self._send("UploadPart", "PUT", url, body, sized, unsigned=True)
        etag = response.headers.get("ETag")
        if not etag:
            raise ValueError(f"UploadPart of {key} part {number}: the response has no ETag")
        return str(etag)

    def upload_part_copy(
        self, src_key: str, dst_key: str, upload_id: str, number: int, first: int, last: int, params: Params
    ) -> str:
        url = self._url(dst_key, {"partNumber": str(number), "uploadId": upload_id})
        headers = {
            **headers_of(params),
            "x-amz-copy-source": self._copy_source(src_key),
            "x-amz-copy-source-range": f"bytes={first}-{last}",
        }
        response = self._send("UploadPartCopy", "PUT", url, None, headers)
        etag = _text(_answer("UploadPartCopy", response), "ETag")
        if not etag:
            raise ValueError(f"UploadPartCopy of {dst_key} part {number}: the response has no ETag")
        return etag

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[dict[str, Any]], params: Params
    ) -> str:
        listed = "".join(
            "<Part>" + "".join(f"<{name}>{_xml_text(str(value))}</{name}>" for name, value in part.items()) + "</Part>"
            for part in parts
        )
        body = f'<CompleteMultipartUpload xmlns="{_XMLNS}">{listed}</CompleteMultipartUpload>'.encode()
        headers = {**headers_of(params), "Content-Type": "application/xml", "Content-Length": str(len(body))}
        response = self._send("CompleteMultipartUpload", "POST", self._url(key, {"uploadId": upload_id}), body, headers)
        return unquoted(_text(_answer("CompleteMultipartUpload", response), "ETag"))

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        self._send("AbortMultipartUpload", "DELETE", self._url(key, {"uploadId": upload_id}), None, {})

    def has_parts(self, key: str, upload_id: str) -> bool:
        response = self._send("ListParts", "GET", self._url(key, {"max-parts": "1", "uploadId": upload_id}), None, {})
        return bool(_all(_answer("ListParts", response), "Part"))

    def multipart_uploads(self, prefix: str) -> list[dict[str, Any]]:
        query = {"encoding-type": "url", "prefix": prefix, "uploads": ""}
        response = self._send("ListMultipartUploads", "GET", self._url(None, query), None, {})
        found = []
        for upload in _all(_answer("ListMultipartUploads", response), "Upload"):
            initiated = _text(upload, "Initiated")
            found.append({
                "Key": urllib.parse.unquote_plus(_text(upload, "Key")),
                "UploadId": _text(upload, "UploadId"),
                "Initiated": iso_timestamp(initiated) if initiated else None,
            })
        return found

    def _get(self, operation: str, query: Mapping[str, str], *, refuse: bool = True) -> Response:
        url = self.base + "?" + urllib.parse.urlencode(sorted(query.items()), quote_via=urllib.parse.quote)
        return self._send(operation, "GET", url, None, {}, refuse=refuse)

    def head_bucket(self) -> int:
        """The status of HeadBucket, whatever it is: the caller decides what a failure means."""
        response = self._send("HeadBucket", "HEAD", self.base, None, {}, refuse=False)
        self.server = str(response.headers.get("Server", ""))
        return response.status

    def bucket_encryption(self) -> frozenset[str] | None:
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

    def list_page(self, prefix: str, params: Params) -> Page:
        """One ListObjectsV2 page, shaped like botocore's (keys decoded, Size an int, LastModified a datetime)."""
        return page_of(self.list_body(prefix, params))

    def list_body(self, prefix: str, params: Params) -> bytes:
        """One ListObjectsV2 page's body as received (the no-op memo digests it without parsing it)."""
        query = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
        query.update({_LIST_QUERY[name]: str(value) for name, value in params.items()})
        response = self._get("ListObjectsV2", query)
        if self.server is None:
            self.server = str(response.headers.get("Server", ""))
        return bytes(response.data)

    def warm(self, connections: int) -> None:
        self._pool.warm(connections)

    def close(self) -> None:
        self._pool.close()


def _payload(body: Buffer | None, *, unsigned: bool) -> str:
    """The X-Amz-Content-SHA256 of a whole body."""
    if unsigned:
        return UNSIGNED_PAYLOAD
    return hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256


def _checked(params: Params) -> bool:
    """Whether a body's bytes are bound to the signature without hashing them into it: a signed Content-MD5
    (or CRC64NVME) header the server checks the body against (`_send`'s `unsigned`)."""
    return "ContentMD5" in params or "ChecksumCRC64NVME" in params


def _put_headers(params: Params, size: int) -> dict[str, str]:
    return {**headers_of(params, sdk_checksum=True), "Content-Length": str(size)}


def put_answer(response: Response) -> str:
    """A PutObject's ETag, unquoted; a status of 300 or more raises its S3Refusal."""
    if response.status >= 300:
        raise refusal("PutObject", response)
    return str(response.headers.get("ETag", "")).strip('"')


def page_of(body: bytes) -> Page:
    """A ListObjectsV2 body as `list_page` answers it: keys decoded, shaped like botocore's."""
    page = parse_list_objects_v2(body)
    for item in page.get("Contents", []):
        item["Key"] = urllib.parse.unquote_plus(item["Key"])
    for item in page.get("CommonPrefixes", []):
        item["Prefix"] = urllib.parse.unquote_plus(item["Prefix"])
    return page


def direct(spec: S3StoreSpec, *, pool_size: int, env: Mapping[str, str] | None = None) -> DirectTransport | None:
    """The direct transport with no botocore at all, or None where botocore must decide endpoint or credentials."""
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
    return DirectTransport(
        base, region, lambda: credentials, bucket=spec.bucket, pool_size=pool_size, connect_timeout=limits.connect,
        read_timeout=limits.read,
    )


def through_botocore(
    client: S3Client,
    credentials: Callable[[], Credentials | None],
    bucket: str,
    *,
    pool_size: int,
    connect_timeout: float,
    read_timeout: float,
) -> DirectTransport:
    """The direct transport sending where botocore would send (read off a presigned URL), with its credentials."""
    probe = urllib.parse.urlsplit(
        client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": _PROBE}, ExpiresIn=60)
    )
    if not probe.path.endswith("/" + _PROBE):
        raise ValueError(f"unexpected presigned URL shape: {probe.path}")
    base = f"{probe.scheme}://{probe.netloc}{probe.path[: -len(_PROBE)]}"
    region = client.meta.region_name or "us-east-1"
    return DirectTransport(
        base, region, credentials, bucket=bucket, pool_size=pool_size, connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def refusal(operation: str, response: Response) -> S3Refusal:
    """An error answer as an S3Refusal: S3's code and message from its XML body, else the status."""
    code, message = str(response.status), response.reason or ""
    try:
        root = ET.fromstring(response.data) if response.data else None
    except ET.ParseError:
        root = None
    if root is not None:
        code = root.findtext("Code") or code
        message = root.findtext("Message") or message
    return S3Refusal(operation, response.status, code, message, response.headers)


def _local(node: ET.Element) -> str:
    return node.tag.rpartition("}")[2]


def _all(root: ET.Element, name: str) -> list[ET.Element]:
    """Elements named `name` under `root`, with or without S3's namespace (some servers answer without it)."""
    return [node for node in root.iter() if _local(node) == name]


def _text(root: ET.Element, name: str) -> str:
    found = _all(root, name)
    return (found[0].text or "") if found else ""


def _answer(operation: str, response: Response) -> ET.Element:
    """The XML of a 2xx answer. CopyObject, UploadPartCopy and CompleteMultipartUpload can fail after their
    200 is sent: the body is then an <Error>, which is raised as the refusal it is."""
    root = ET.fromstring(response.data)
    if _local(root) == "Error":
        raise refusal(operation, response)
    return root


# botocore's parameter name -> the header the direct transport sends for it.
_HEADERS = {
    **CONDITION_HEADERS,
    "Range": "Range",
    "ContentMD5": "Content-MD5",
    "ContentType": "Content-Type",
    "ContentEncoding": "Content-Encoding",
    "ContentDisposition": "Content-Disposition",
    "ContentLanguage": "Content-Language",
    "CacheControl": "Cache-Control",
    "MetadataDirective": "x-amz-metadata-directive",
    "ChecksumCRC64NVME": "x-amz-checksum-crc64nvme",
    "ChecksumAlgorithm": "x-amz-checksum-algorithm",
    "ChecksumType": "x-amz-checksum-type",
}
# ListObjectsV2's parameters (botocore's names) -> the query's.
_LIST_QUERY = {
    "ContinuationToken": "continuation-token",
    "StartAfter": "start-after",
    "Delimiter": "delimiter",
    "MaxKeys": "max-keys",
}
# A HEAD's headers -> botocore's names for them (those entry_of_head and kept_headers read).
_HEAD_FIELDS = {
    "ETag": "ETag",
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "SSECustomerAlgorithm": "x-amz-server-side-encryption-customer-algorithm",
    **{name: _HEADERS[name] for name in ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage",
                                          "CacheControl")},
}
_META = "x-amz-meta-"


def headers_of(params: Params, *, sdk_checksum: bool = False) -> dict[str, str]:
    """botocore's parameters as the headers botocore would send. `sdk_checksum`: for a body checked by its
    CRC64NVME (PutObject, UploadPart), the header that names the algorithm the checksum header is of."""
    out: dict[str, str] = {}
    for name, value in params.items():
        if name == "Metadata":
            out.update({_META + key: str(item) for key, item in value.items()})
        else:
            out[_HEADERS[name]] = str(value)
    if sdk_checksum and "ChecksumCRC64NVME" in params:
        out["x-amz-sdk-checksum-algorithm"] = "CRC64NVME"
    return out


def head_of(headers: Mapping[str, str]) -> Head:
    """A HEAD's headers shaped as botocore's HeadObject answer."""
    head: Head = {
        "ContentLength": int(headers.get("Content-Length") or 0),
        "Metadata": {name[len(_META):].lower(): value for name, value in headers.items()
                     if name.lower().startswith(_META)},
    }
    head.update({field: headers[header] for field, header in _HEAD_FIELDS.items() if headers.get(header)})
    modified = headers.get("Last-Modified")
    if modified:
        head["LastModified"] = email.utils.parsedate_to_datetime(modified)
    return head


def _xml_text(value: str) -> str:
    """XML character data, as xml.sax.saxutils.escape writes it: importing that module costs the warm path
    urllib.request (~5 ms) for the one multipart complete that needs it."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
