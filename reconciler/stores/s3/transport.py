"""The requests S3Store sends, as one small protocol with two implementations.

`S3Store` (store.py) holds the semantics once: conditions, the upload journal, multipart, resumed
downloads, verification. What differs between botocore and the direct path (SigV4 over a kept-alive
pool of the standard library's connections) is only how a request is put on the wire and how its answer
is read back; that is a `Transport`:

- `DirectTransport` (direct/raw.py): every request signed and sent without botocore. Where the endpoint
  and the credentials follow from the spec and plain keys (`direct()`), botocore is never imported;
  otherwise botocore decides them once (`through_botocore()`) and the requests still go direct.
- `BotocoreTransport` (botocore_transport.py): every request through a botocore client, for a client the
  caller injected (a test double, moto) and for credentials only botocore's chain can sign with.

Requests take their extra parameters in botocore's names (`IfMatch`, `Metadata`, `ContentMD5`,
`ChecksumCRC64NVME`...): one vocabulary, which the direct transport turns into headers. Failures are raised
as the transport met them and turned into StoreErrors by `translate`, so the store reads every failure
the same way, whichever transport met it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, TypeVar

from reconciler.stores.base import StoreError

Params = Mapping[str, Any]  # botocore's parameter names
# A ListObjectsV2 page, shaped like botocore's (keys decoded, Size an int, LastModified a datetime).
Page = dict[str, Any]
Head = dict[str, Any]  # a HeadObject answer, shaped like botocore's (ContentLength, ETag, Metadata, LastModified...)
Buffer = bytes | bytearray | memoryview
T = TypeVar("T")


class Readable(Protocol):
    def read(self, n: int | None = ..., /) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Download:
    body: Readable
    etag: str | None  # the version read, which a resumed read pins with If-Match


class Transport(Protocol):
    bucket: str

    @property
    def server(self) -> str | None:
        """The Server header HeadBucket or the first listing page answered with (it tells the listing order);
        None before either."""
        ...

    def translate(self, exc: Exception, *, key: str, action: str) -> StoreError:
        """A failure of one of this transport's requests (or of reading a body it returned) as a StoreError."""
        ...

    def head_bucket(self) -> int:
        """HeadBucket's status, whatever it is (the store says what a refusal means); raises when unanswered."""
        ...

    def bucket_encryption(self) -> frozenset[str] | None:
        """The bucket's default-encryption algorithms; None when it has none or the endpoint lacks the API."""
        ...

    def list_page(self, prefix: str, params: Params) -> Page:
        """One ListObjectsV2 page of `prefix`; `params` from `list_params`."""
        ...

    def head_object(self, key: str, params: Params) -> Head | None:
        """None when there is no such key (404); a failed precondition raises."""
        ...

    def get_object(self, key: str, params: Params) -> Download: ...

    def put_object(self, key: str, body: bytes | BinaryIO, size: int, params: Params) -> str:
        """PutObject of `size` bytes (a stream is sent from where it stands); the ETag, unquoted."""
        ...

    def copy_object(self, src_key: str, dst_key: str, params: Params) -> str:
        """CopyObject within the bucket; the new ETag, unquoted."""
        ...

    def delete_object(self, key: str, params: Params) -> None: ...

    def create_multipart_upload(self, key: str, params: Params) -> str:
        """The new upload's id."""
        ...

    def upload_part(self, key: str, upload_id: str, number: int, body: Buffer, params: Params) -> str:
        """The part's ETag as the server gave it, which CompleteMultipartUpload lists."""
        ...

    def upload_part_copy(
        self, src_key: str, dst_key: str, upload_id: str, number: int, first: int, last: int, params: Params
    ) -> str:
        """Bytes [first, last] of `src_key` as part `number`; the part's ETag."""
        ...

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[dict[str, Any]], params: Params
    ) -> str:
        """The object's ETag, unquoted; a refusal (412 under a condition) raises, whatever the status says."""
        ...

    def abort_multipart_upload(self, key: str, upload_id: str) -> None: ...

    def has_parts(self, key: str, upload_id: str) -> bool:
        """Whether the upload holds a part; a refusal NoSuchUpload (or 404) when it is no longer in progress."""
        ...

    def multipart_uploads(self, prefix: str) -> list[dict[str, Any]]:
        """The uploads in progress under `prefix`: Key, UploadId, Initiated (a datetime)."""
        ...

    def warm(self, connections: int) -> None:
        """Open up to `connections` in the background for the requests about to follow (where that exists)."""
        ...

    def close(self) -> None: ...


def list_params(
    *, start_after: str | None = None, delimiter: str | None = None, token: str | None = None,
    max_keys: int | None = None,
) -> dict[str, Any]:
    """A ListObjectsV2 request's parameters (a continuation token takes over from StartAfter)."""
    params: dict[str, Any] = {}
    if token:
        params["ContinuationToken"] = token
    elif start_after is not None:
        params["StartAfter"] = start_after
    if delimiter is not None:
        params["Delimiter"] = delimiter
    if max_keys is not None:
        params["MaxKeys"] = max_keys
    return params


def sent(transport: Transport, action: str, where: str, request: Callable[..., T], *args: Any) -> T:
    """`request(*args)` of `transport`, its failure a StoreError that names `action` and `where`."""
    try:
        return request(*args)
    except Exception as exc:
        raise transport.translate(exc, key=where, action=action) from exc
