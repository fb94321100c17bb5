"""An S3 bucket as a Store, over either transport (transport.py).

The semantics live here once, whatever sends the requests: the conditions every mutation carries,
md5s read off listings and HEADs, uploads verified by the server against the md5 (and CRC64NVME) sent
with them, multipart through the journal (multipart.py, journal.py), downloads resumed on the version
first read (download.py), the bucket's reachability worded for the one running pixel.

Change detection needs each object's md5. The listing gives it for free when
the ETag is a plain md5 (single-part upload, no SSE-KMS); otherwise the md5
pixel recorded in metadata is read with one HEAD, and failing that the entry
carries md5=None so the planner can schedule a rehash.

Multipart uploads and copies are recorded by journal.py under `.pixel/uploads/`
while in progress. `list()` never shows these records.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from reconciler.model import Entry, S3StoreSpec
from reconciler.stores.base import (
    ObjectChanged,
    OpenSource,
    PermanentStoreError,
    StoreError,
    StoreUnusable,
    TransientStoreError,
)
from reconciler.stores.retry import outermost
from reconciler.stores.s3 import listing
from reconciler.stores.s3.botocore_transport import make_client, transports
from reconciler.stores.s3.bucket import BucketCheck, denied, in_background
from reconciler.stores.s3.conditions import conditions
from reconciler.stores.s3.direct.bulk import BulkSender, Endpoint, Wire
from reconciler.stores.s3.direct.http_pool import Response
from reconciler.stores.s3.direct.raw import DirectTransport, put_answer
from reconciler.stores.s3.download import ResumingReader
from reconciler.stores.s3.errors import TIMEOUT, copy_too_large
from reconciler.stores.s3.journal import Journal, JournaledUpload
from reconciler.stores.s3.multipart import copy_by_parts, multipart
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
from reconciler.stores.s3.transport import Head, Page, Transport, list_params, sent
from reconciler.stores.s3.upload import MIB, FileParts, PartBuffers, part_size_for, put_params

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["MIB", "S3Store", "make_client"]

# Bodies up to this size are read into memory and sent in one go (at most parallelism x 1 MiB in flight).
SMALL_BODY = 1 * MIB

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
        self.list_concurrency = list_concurrency
        # The bucket's HEAD goes through `_checking`, every other request through `transport`; the two differ
        # only where botocore decides (its client words a HEAD's failure, the direct transport sends the rest).
        # `_fallback`: where the spec alone decided, botocore's decision for a bucket that did not answer.
        self._checking, self.transport, self._fallback = transports(spec, client, max_pool_connections)
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.part_concurrency = part_concurrency
        self.copy_part_size = copy_part_size
        # Store-wide, not per upload: parallel large uploads share one memory budget of
        # max_parts_in_memory * part_size, whatever the file sizes and the apply parallelism.
        self._buffers = PartBuffers(max(1, max_parts_in_memory))
        self.full_object_checksum = spec.checksum == "when_supported"
        self._etags_trusted: bool | None = None
        self._check = BucketCheck()
        self._journal = Journal(self.transport, apply_id)

    @property
    def apply_id(self) -> str | None:
        """The lock id of the apply this store uploads for: written into each upload record."""
        return self._journal.apply_id

    def for_apply(self, apply_id: str | None) -> S3Store:
        """This store, its connections and memory budget shared, whose upload records name `apply_id`."""
        bound: S3Store = object.__new__(S3Store)
        bound.__dict__.update(self.__dict__)
        bound._journal = Journal(self.transport, apply_id)
        return bound

    def _sent(self, action: str, where: str, request: Callable[..., Any], *args: Any) -> Any:
        self._ready()
        return sent(self.transport, action, where, request, *args)

    # --- the bucket -----------------------------------------------------------------------------------------

    def check_on_first_use(self) -> None:
        """What check_bucket promises, without a round trip of its own before the work: the connections the
        listing's ranges need are opened now, in the background (while the specs load and the local tree is
        walked), and the bucket is checked by the first request. A listing goes first and its first page is
        the check (a failure asks HeadBucket why, for check_bucket's clear errors); any other request first
        waits for check_bucket, so a lock or an upload never fails in words less clear than it."""
        self._check.on_first_use = True
        self.transport.warm(self.list_concurrency)

    def _ready(self) -> None:
        if self._check.on_first_use and not self._check.passed:
            self._checked()

    def _checked(self) -> None:
        """check_bucket, once for every request waiting on it; its error raised as the store's, not the
        request's."""
        with self._check.lock:
            if self._check.passed:
                return
            try:
                self.check_bucket()
            except StoreError as exc:
                raise StoreUnusable(str(exc), code=exc.code, key=exc.key) from exc

    def check_bucket(self) -> None:
        """Fail early, and clearly, when the bucket is missing or unreachable."""
        try:
            status: int | None = self._head_bucket(self._checking)
        except StoreError as exc:
            if self._fallback is None or exc.code == TIMEOUT:
                raise  # a deadline met: botocore would wait as long again, and say less
            status = None
        if status not in (200, 403, 404) and self._fallback is not None:
            # Unreachable, or an answer the spec alone cannot act on (another region): botocore's view decides.
            self.transport.close()
            self._checking, self.transport = self._fallback()
            self._fallback = None
            self._journal = Journal(self.transport, self._journal.apply_id)
            status = self._head_bucket(self._checking)
        if status == 404:
            raise PermanentStoreError(
                f'store "{self.name}": bucket "{self.bucket}" does not exist at '
                f"{self.spec.endpoint or 'the default AWS endpoint'}",
                code="NoSuchBucket",
            )
        if status == 403:
            raise denied(self._checking, self.name, self.bucket, self.spec.endpoint)
        if status != 200:
            raise PermanentStoreError(f"head bucket {self.bucket}: {status}", code=str(status))
        self._check.passed = True

    def _head_bucket(self, transport: Transport) -> int:
        """HEAD bucket's status, in the retry layer. While it goes out, so does the round trip the first listing
        would make before its first page: the bucket's default encryption (whether its ETags are md5s)."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixel-check") as ahead:
            encryption = ahead.submit(transport.bucket_encryption)
            started = time.monotonic()
            status = outermost(functools.partial(self._bucket_status, transport))
            far = time.monotonic() - started > FAR_ROUND_TRIP_S
        if status == 200:
            # Only now: a bucket that could not be reached says nothing about its encryption.
            self._etags_trusted = not (encryption.result() or frozenset()) & KMS_ALGORITHMS
            if far:
                # Far away, each of the listing's ranges would pay a connect first: opened meanwhile, in the
                # background (at 25 ms each way, 0.1 s of a 0.8 s plan). Near, that costs more than it saves.
                self.transport.warm(self.list_concurrency)
        return status

    def _bucket_status(self, transport: Transport) -> int:
        try:
            status = transport.head_bucket()
        except Exception as exc:
            error = transport.translate(exc, key=self.bucket, action="head bucket")
            if error.code == TIMEOUT:
                raise self._unanswered(error) from exc
            raise transport.translate(exc, key="", action=f'store "{self.name}": reach bucket "{self.bucket}"') from exc
        if status == 429 or status >= 500:  # throttled or unwell: the retry layer asks again
            raise TransientStoreError(f"head bucket {self.bucket}: {status}", code=str(status))
        return status

    def _unanswered(self, exc: StoreError) -> PermanentStoreError:
        """The first request met a deadline: not retried, since each try would wait it out again (a server that
        accepts connections and never answers held `pixel plan` for 25 minutes that way)."""
        return PermanentStoreError(f'store "{self.name}": {exc}', code=TIMEOUT)

    # --- reads ----------------------------------------------------------------------------------------------

    def _pages(self, prefix: str, known: Iterable[str] | None) -> Iterator[Page]:
        """The listing's pages, each request in the one retry layer: a page throttled is asked again, not the
        whole listing."""
        delimiter = listing.first_delimiter(known, self.list_concurrency)
        first: Page | None = None
        if not self._check.passed or self.transport.server is None:
            first = self._first_page(prefix, delimiter)  # which server, so which order the ranges are cut in
        transport = self.transport  # the first page may have handed the store to botocore's transport

        def list_pages(prefix_: str, start_after: str | None, delimiter_: str | None) -> Iterator[Page]:
            nonlocal first
            token: str | None = None
            while True:
                if first is not None and token is None and (prefix_, start_after, delimiter_) == (
                    prefix, None, delimiter
                ):
                    page, first = first, None  # the request `_first_page` already sent
                else:
                    ask = functools.partial(
                        transport.list_page, prefix_,
                        list_params(start_after=start_after, delimiter=delimiter_, token=token),
                    )
                    page = outermost(functools.partial(sent, transport, "list", prefix_, ask))
                yield page
                asked, token = token, page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token:
                    tree = listing.order_of(transport.server or "") is listing.tree_order
                    token = listing.tree_resumes_at(page) if tree and delimiter_ is None else None
                    if token is None or token == asked:  # the last page, or a server that would not move on
                        return

        order = listing.order_of(transport.server or "")
        pages = listing.listing(list_pages, prefix, known=known, workers=self.list_concurrency, order=order)
        while page := sent(transport, "list", prefix, next, pages, None):
            yield page

    def _first_page(self, prefix: str, delimiter: str | None) -> Page:
        """The listing's first request, sent at once, the same whatever order the server lists in; no HeadBucket
        goes ahead of it. Its answer says that the bucket is there and which server it is (the `Server` header,
        so the order the other ranges are cut in). Beside it goes the bucket's default encryption, which the
        listing waits for only where it judges an ETag.

        A failure, where the store checks on first use, asks HeadBucket why (check_bucket: no such bucket, which
        credential is wrong, botocore's view of an endpoint that did not answer), then lists again if the bucket
        is fine after all. A deadline met is said at once: the HEAD would wait it out again."""
        transport = self.transport
        self._ask_encryption(transport)
        params = list_params(delimiter=delimiter)
        try:
            page: Page = transport.list_page(prefix, params)
        except Exception as exc:
            error = transport.translate(exc, key=prefix, action="list")
            if error.code == TIMEOUT:
                raise StoreUnusable(str(self._unanswered(error)), code=TIMEOUT) from exc
            if self._check.on_first_use:
                self._checked()
            # Else nothing was promised about the bucket: the listing's own error, retried as any request's,
            # keeps its class (a reader falls back to its cache on a transient one).
            transport = self.transport
            ask = functools.partial(transport.list_page, prefix, params)
            page = outermost(functools.partial(sent, transport, "list", prefix, ask))
        self._check.passed = True
        return page

    def _ask_encryption(self, transport: Transport) -> None:
        # No lock: two listings starting at once may each ask (harmless), and a lock held at a fork would be
        # held for ever in the child.
        check = self._check
        if (check.encryption is None or check.asked_by != os.getpid()) and self._etags_trusted is None:
            check.encryption, check.asked_by = in_background(transport.bucket_encryption), os.getpid()

    def list(self, prefix: str, known: Iterable[str] | None = None) -> Iterator[Entry]:
        """Every object under `prefix` except pixel's own space (the lock, move scratch, upload records): that is
        bookkeeping, never data to sync, prune, inventory or verify, even under a whole-bucket prefix.

        `known`: keys expected under `prefix`, to list it in ranges cut at them (stores/s3/listing.py)."""
        return self.entries_of(self._pages(prefix, known))

    def entries_of(self, pages: Iterable[Page]) -> Iterator[Entry]:
        """The entries `list` makes of a listing's pages (pages listed already: the no-op memo's)."""
        # S3StoreSpec.reserves with its prefixes worked out once per listing, not once per key.
        own, lock = self.spec.reserved_prefixes(), self.spec.lock_key
        for page in pages:
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
                    key=key, size=int(obj.get("Size", 0)), md5=md5, mtime_ns=mtime_ns(obj.get("LastModified")),
                    etag=etag,
                )

    def list_expecting(self, prefix: str, known: Iterable[str]) -> Iterator[Entry]:
        return self.list(prefix, known)

    def knows_encryption(self, algorithms: frozenset[str] | None) -> None:
        """The bucket's default encryption as the caller asked it (the no-op memo, which digests that answer):
        the ETags listed are judged by it, not by an answer of the store's own."""
        self._etags_trusted = not (algorithms or frozenset()) & KMS_ALGORITHMS

    def _listed_etags_are_md5s(self) -> bool:
        """False when the bucket encrypts with KMS by default: those ETags look like md5s but are not."""
        if self._etags_trusted is None:
            # Asked beside the first page: judged only once answered, never taken for "no KMS" meanwhile.
            asked = self._check.encryption
            if asked is None or self._check.asked_by != os.getpid():
                # A forked child (a DataLoader worker): the thread that asked is the parent's, its answer
                # never comes here.
                algorithms = self.transport.bucket_encryption()
            else:
                algorithms = asked.result()
            self._etags_trusted = not (algorithms or frozenset()) & KMS_ALGORITHMS
        return self._etags_trusted

    def _head(self, action: str, key: str, params: dict[str, str]) -> Head | None:
        self._ready()
        return cast(Head | None, outermost(lambda: self._sent(action, key, self.transport.head_object, key, params)))

    def _existing(self, action: str, key: str, params: dict[str, str]) -> Head:
        head = self._head(action, key, params)
        if head is None:
            raise PermanentStoreError(f"{action} {key}: 404 no such key", code="NoSuchKey", key=key)
        return head

    def _md5_from_head(self, key: str) -> str | None:
        return md5_from_metadata(self._existing("head", key, {}).get("Metadata", {}))

    def recorded_md5s(self, key: str) -> tuple[Entry, str | None, str | None] | None:
        """(entry, md5 in metadata, md5 the ETag is) for `pixel verify` and rehash; None when the object is gone."""
        found = self._head("head", key, {})
        return None if found is None else entry_of_head(key, found)

    def stat(self, key: str) -> Entry | None:
        found = self.recorded_md5s(key)
        return None if found is None else found[0]

    @contextlib.contextmanager
    def _reading(self, key: str, if_match: str | None, start: int = 0, stop: int | None = None) -> Iterator[BinaryIO]:
        self._ready()
        reader = ResumingReader(self.transport, key, etag=if_match, start=start, stop=stop)
        try:
            yield cast(BinaryIO, reader)
        finally:
            reader.close()

    def open(self, key: str, *, if_match: str | None = None) -> AbstractContextManager[BinaryIO]:
        """The object's body, streamed; with `if_match` (an ETag) only that version of it, else 412."""
        return self._reading(key, if_match)

    def open_range(
        self, key: str, start: int, stop: int, *, if_match: str | None = None
    ) -> AbstractContextManager[BinaryIO]:
        """Bytes [start, stop) of the object, streamed (a ranged GET); `if_match` as for open."""
        return self._reading(key, if_match, start, stop)

    # --- writes ---------------------------------------------------------------------------------------------

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
        with source() as stream, contextlib.ExitStack() as stack:
            # A small body goes as bytes: botocore sends a file object with `Expect: 100-continue`,
            # a round trip per object that dominates uploads of many small files.
            body: BinaryIO | bytes = _small_body(key, stream, size) if size <= SMALL_BODY else stream
            if not isinstance(body, bytes) and not _seekable(body):
                # A body that cannot be rewound (another store's download) is spooled: its checksum is read
                # before it is sent, and a resent request must send the same bytes again.
                spool = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=SMALL_BODY))
                while chunk := body.read(8 * MIB):
                    spool.write(chunk)
                spool.seek(0)
                body = cast(BinaryIO, spool)
            params = self._put_params(key, body, size, md5, when)
            etag = self._sent("upload", key, self.transport.put_object, key, body, size, params)
        return Entry(key=key, size=size, md5=md5, etag=etag)

    def _put_params(
        self, key: str, body: bytes | BinaryIO, size: int, md5: str, when: dict[str, str]
    ) -> dict[str, Any]:
        """A PutObject's parameters, for `write` and `put_wire` alike: its integrity headers and conditions."""
        return {**put_params(key, body, size, md5, self.full_object_checksum), **when}

    # --- many small writes from one thread (stores/s3/direct/bulk.py) ----------------------------------------

    def bulk_endpoint(self, sender: BulkSender[Any], connections: int) -> Endpoint[Any] | None:
        """Where `put_wire`'s requests go within `sender` (one thread's many requests in flight), over
        `connections` connections of their own; None where this store's requests cannot go that way (botocore's
        transport, a TLS endpoint)."""
        transport = self.transport
        return transport.bulk_endpoint(sender, connections) if isinstance(transport, DirectTransport) else None

    def bulk_fits(self, size: int) -> bool:
        """Whether `write` would send a body of `size` bytes as one PutObject read whole into memory."""
        return size <= min(SMALL_BODY, self.multipart_threshold)

    def put_wire(
        self, key: str, source: OpenSource, *, size: int, md5: str, if_match: str | None = None,
        if_absent: bool = False,
    ) -> Wire:
        """The PutObject `write` would send for this small source (`bulk_fits`), as bytes for the sender."""
        with source() as stream:
            body = _small_body(key, stream, size)
        params = self._put_params(key, body, size, md5, conditions(if_match=if_match, if_absent=if_absent))
        transport = cast(DirectTransport, self.transport)  # bulk_endpoint gave an endpoint: the direct transport
        return cast(Wire, self._sent("upload", key, transport.put_wire, key, body, params))

    def put_answered(self, key: str, answer: Response | Exception, *, size: int, md5: str) -> Entry:
        """What `write` returns, from the sender's answer to `put_wire`'s request; a failure as write's."""

        def read() -> str:
            if isinstance(answer, Exception):
                raise answer
            return put_answer(answer)

        return Entry(key=key, size=size, md5=md5, etag=sent(self.transport, "upload", key, read))

    def _multipart_upload(self, key: str, source: OpenSource, *, size: int, md5: str, when: dict[str, str]) -> str:
        """Parts go up in parallel; memory is bounded by the store's part buffers, not the file size."""
        self._ready()
        full_object: dict[str, str] = (
            {"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "FULL_OBJECT"} if self.full_object_checksum else {}
        )
        transport = self.transport

        def send(key: str, upload_id: str, number: int, chunk: memoryview, integrity: dict[str, str]) -> str:
            return sent(transport, "upload part", key, transport.upload_part, key, upload_id, number, chunk, integrity)

        parts = FileParts(
            key, source, md5, part_size_for(size, self.part_size), self.part_concurrency, self._buffers,
            self.full_object_checksum, send,
        )
        return multipart(
            self._journal, action="upload", completing="complete upload", key=key, where=key,
            create={"Metadata": {MD5_META: md5}, **full_object}, send_parts=parts.send_parts, conditions=when,
        )

    def _head_source(self, src_key: str, src_etag: str | None) -> Head:
        # Pinned to the planned version: a source changed since the plan fails with 412 here.
        return self._existing("copy", src_key, conditions(if_match=src_etag))

    def copy(
        self, src_key: str, dst_key: str, *, md5: str | None, src_etag: str | None = None,
        if_match: str | None = None, if_absent: bool = False,
    ) -> Entry:
        when = conditions(if_match=if_match, if_absent=if_absent)
        params: dict[str, Any] = conditions(if_match=if_match, if_absent=if_absent, src_etag=src_etag)
        if md5 is not None:
            # REPLACE would drop the object's other metadata and its Content-Type: carry them over.
            params.update(kept_headers(self._head_source(src_key, src_etag), md5))
            params["MetadataDirective"] = "REPLACE"
        try:
            etag = self._sent("copy", f"{src_key} => {dst_key}", self.transport.copy_object, src_key, dst_key, params)
        except PermanentStoreError as exc:
            if not copy_too_large(exc):
                raise
            return self._multipart_copy(src_key, dst_key, md5=md5, src_etag=src_etag, when=when)
        entry = self.stat(dst_key)
        return Entry(key=dst_key, size=entry.size if entry else 0, md5=md5, etag=etag)

    def _multipart_copy(
        self, src_key: str, dst_key: str, *, md5: str | None, src_etag: str | None, when: dict[str, str]
    ) -> Entry:
        """Server-side copy in ranged parts, for sources over CopyObject's 5 GiB limit. No byte comes here."""
        etag, size = copy_by_parts(
            self._journal, src_key, dst_key, self._head_source(src_key, src_etag), md5=md5, src_etag=src_etag,
            when=when, part_size=self.copy_part_size, concurrency=self.part_concurrency,
        )
        return Entry(key=dst_key, size=size, md5=md5, etag=etag)

    def journaled_uploads(self) -> tuple[JournaledUpload, ...]:
        """The multipart uploads pixel recorded in this bucket and has not finished: a killed apply's leftovers
        when read under the apply lock. Uploads without a record (other tools') are never among them."""
        self._ready()
        return outermost(self._journal.uploads)

    def abort_journaled(self, upload: JournaledUpload) -> bool:
        """Abort a recorded upload and remove its record. False when it was no longer in progress
        (completed or aborted before its record could be removed): then only the record goes."""
        self._ready()
        return outermost(lambda: self._journal.abort(upload))

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        self._sent("delete", key, self.transport.delete_object, key, conditions(if_match=if_match))


def _small_body(key: str, stream: BinaryIO, size: int) -> bytes:
    """The whole of a small source, which must still be the `size` bytes the plan saw."""
    body = stream.read(size + 1)
    if len(body) != size:
        raise ObjectChanged(
            f"upload {key}: the source changed since the plan ({len(body)} bytes read, {size} planned); "
            "re-run pixel plan",
            code="412",
            key=key,
        )
    return body


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, ValueError):
        return False
