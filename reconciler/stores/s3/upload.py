"""Uploads: the integrity headers of a body, and a big file's parts read, hashed and sent in parallel.

Whichever transport sends them, the server checks every body against a header computed here: Content-MD5
(400 BadDigest otherwise) and, where the store allows the newer checksums, CRC64NVME. A multipart
upload's parts are read into part-sized buffers reused from part to part; the whole-file md5 is taken on a
thread of its own, in file order, each part's checksum on the thread that sends it (the whole file's
CRC64NVME is combined from the parts', never computed over the bytes again): hashlib, awscrt and the socket
release the GIL, so reading, hashing and sending overlap on separate cores.

The whole-file md5 is the plan's to give, not the upload's to take again, where the source can vouch for
it (`VouchedSource`: a local file whose exact version the hash cache holds that md5 for, asked before the
first read and again after the last). Then no byte is md5-hashed twice; each part is still checked by the
server against its own checksum, and a file whose version moved while it was read is refused.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import io
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, cast, runtime_checkable

from reconciler.stores.base import ObjectChanged, OpenSource, PermanentStoreError
from reconciler.stores.s3.multipart import MAX_PARTS, Parts
from reconciler.stores.s3.objects import MD5_META

MIB = 1024 * 1024
# The link a big upload sizes its parts in flight for: 10 Gbit/s, awscrt's default throughput target. Sending
# as if the link were this fast costs only memory, which the store's part buffers bound; assuming it slower
# would leave a far, fast link idle between parts.
LINK_BYTES_PER_S = 1.25e9


@functools.cache
def _awscrt_crc64nvme() -> Callable[[bytes, int], int]:
    # awscrt's import alone costs a no-op plan 0.1 s; and an import statement per call ~4 us of a small PUT's CPU.
    from awscrt.checksums import crc64nvme as crc

    return cast(Callable[[bytes, int], int], crc)


def crc64nvme(data: bytes | bytearray | memoryview, previous: int = 0) -> int:
    return int(_awscrt_crc64nvme()(cast(bytes, data), previous))  # any buffer: the stub says bytes


def combine_crc64nvme(first: int, second: int, second_size: int) -> int:
    """The CRC64NVME of two blocks one after the other, from theirs."""
    from awscrt.checksums import combine_crc64nvme as combine

    return int(combine(first, second, second_size))


def crc64_b64(value: int) -> str:
    return base64.b64encode(value.to_bytes(8, "big")).decode()


def crc64_of_stream(key: str, stream: BinaryIO, size: int) -> int:
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


def put_params(key: str, body: bytes | BinaryIO, size: int, md5: str, full_object: bool) -> dict[str, Any]:
    """A PutObject's integrity parameters: the server refuses the body unless it hashes to them."""
    params: dict[str, Any] = {"ContentMD5": base64.b64encode(bytes.fromhex(md5)).decode(), "Metadata": {MD5_META: md5}}
    if full_object:
        crc = crc64nvme(body) if isinstance(body, bytes) else crc64_of_stream(key, body, size)
        params["ChecksumCRC64NVME"] = crc64_b64(crc)
    return params


def part_size_for(size: int, minimum: int) -> int:
    """S3 allows 10,000 parts: very large files get larger parts, rounded up to whole MiB."""
    needed = -(-size // MAX_PARTS)
    return max(minimum, -(-needed // MIB) * MIB)


def parts_in_flight(round_trip_s: float, part_size: int, *, least: int, most: int) -> int:
    """Parts to keep in flight: enough to cover the link's bandwidth x round trip (each part waits a round
    trip for its answer, in which the others keep the link busy), at least `least`, at most `most` (the part
    buffers: memory)."""
    covering = math.ceil(LINK_BYTES_PER_S * max(0.0, round_trip_s) / part_size) + 1
    return max(1, min(most, max(least, covering)))


class PartBuffers:
    """Part-sized buffers, reused from part to part and upload to upload: a fresh 8 MiB per part costs an
    allocation and two thousand page faults. At most `slots` exist at once (taken or kept), and none is
    kept once no upload is under way, so an idle store holds no part memory."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
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


class ViewReader(io.RawIOBase):
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


def read_into(body: BinaryIO, buffer: bytearray) -> int:
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


def _vouches(body: BinaryIO, md5: str) -> bool:
    """Whether `body` vouches, now, that its bytes have `md5`."""
    return isinstance(body, VouchedSource) and body.vouched_md5() == md5


def _failed(future: Future[Any]) -> bool:
    return not future.cancelled() and future.exception() is not None


@runtime_checkable
class VouchedSource(Protocol):
    """A source stream that knows its bytes' md5 without their being read again."""

    def vouched_md5(self) -> str | None:
        """The md5 of the bytes this stream gives, while its version is the one that md5 was taken of and
        is still what it was when first asked; None when that cannot be said."""
        ...


# (key, upload id, part number, the part's bytes, its integrity parameters) -> the part's ETag.
SendPart = Callable[[str, str, int, memoryview, dict[str, str]], str]


@dataclass(frozen=True)
class FileParts:
    """How one file's parts go up: `send_parts(upload_id, round trip)` for multipart.multipart."""

    key: str
    source: OpenSource
    md5: str
    part_size: int
    concurrency: int
    buffers: PartBuffers
    full_object: bool
    send: SendPart

    def _part(self, upload_id: str, number: int, chunk: memoryview) -> tuple[dict[str, Any], int]:
        """One part, checked by the server against its CRC64NVME (full-object mode) or Content-MD5: the part
        as CompleteMultipartUpload lists it, and its CRC64NVME (0 outside full-object mode)."""
        crc = 0
        if self.full_object:
            crc = crc64nvme(chunk)
            listed = {"ChecksumCRC64NVME": crc64_b64(crc)}
            integrity = listed
        else:
            listed = {}  # Content-MD5 is per request only: CompleteMultipartUpload does not list it
            integrity = {"ContentMD5": base64.b64encode(hashlib.md5(chunk).digest()).decode()}
        etag = self.send(self.key, upload_id, number, chunk, integrity)
        return {"ETag": etag, "PartNumber": number, **listed}, crc

    def send_parts(self, upload_id: str, round_trip_s: float) -> Parts:
        """The parts sent, `concurrency` or more at once as the round trip needs (parts_in_flight)."""
        senders = parts_in_flight(round_trip_s, self.part_size, least=self.concurrency, most=self.buffers.slots)
        with self.buffers.in_use():
            return self._send_parts(upload_id, senders)

    def _send_parts(self, upload_id: str, senders: int) -> Parts:
        digest = hashlib.md5()
        sizes: list[int] = []
        futures: list[Future[tuple[dict[str, Any], int]]] = []
        failed: list[Future[tuple[dict[str, Any], int]]] = []
        pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="pixel-part")
        # One worker: the parts are hashed in file order.
        hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixel-md5")
        try:
            with self.source() as body:
                vouched = _vouches(body, self.md5)
                number = 1
                while not failed:  # a part failed for good: stop reading
                    buffer = self.buffers.take(self.part_size)
                    try:
                        filled = read_into(body, buffer)
                    except BaseException:
                        self.buffers.give_back(buffer)
                        raise
                    if not filled:
                        self.buffers.give_back(buffer)
                        break
                    view = memoryview(buffer)[:filled]
                    sizes.append(filled)
                    # The buffer is reused once both its hash (if the md5 is taken here) and its send are done.
                    users = _Users(1 if vouched else 2, functools.partial(self.buffers.give_back, buffer))
                    if not vouched:
                        hasher.submit(digest.update, view).add_done_callback(users.done)
                    future = pool.submit(self._part, upload_id, number, view)
                    future.add_done_callback(users.done)
                    future.add_done_callback(lambda f: failed.append(f) if _failed(f) else None)
                    futures.append(future)
                    del view, buffer
                    number += 1
                if vouched and not _vouches(body, self.md5):
                    raise ObjectChanged(
                        f"upload {self.key}: the local file changed while it was read (its version is not the "
                        "one whose md5 was planned); nothing was written, re-run pixel plan",
                        code="412",
                        key=self.key,
                    )
            sent = [f.result() for f in futures]
            hasher.shutdown(wait=True)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            hasher.shutdown(wait=True, cancel_futures=True)
            pool.shutdown(wait=True)
        if not vouched and digest.hexdigest() != self.md5:
            raise PermanentStoreError(
                f"upload {self.key}: the local file changed while it was read (md5 {digest.hexdigest()} "
                f"!= planned {self.md5}); nothing was written",
                code="BadDigest",
                key=self.key,
            )
        parts = [part for part, _ in sent]
        if not self.full_object:
            return parts, {}
        # The whole file's CRC64NVME from its parts': no second pass over the bytes.
        whole = 0
        for (_, crc), size in zip(sent, sizes, strict=True):
            whole = combine_crc64nvme(whole, crc, size)
        return parts, {"ChecksumCRC64NVME": crc64_b64(whole), "ChecksumType": "FULL_OBJECT"}
