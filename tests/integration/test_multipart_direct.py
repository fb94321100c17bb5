"""Multipart uploads whose parts go on the direct path (stores/s3/direct/raw.py), against a real SeaweedFS.

The parts are read into reused buffers, sent unsigned with their checksum header as the check, and the
whole-file md5 is taken on a thread of its own: these check what that must never cost, the bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from reconciler.model import S3StoreSpec
from reconciler.stores.base import ObjectChanged, PermanentStoreError, TransientStoreError
from reconciler.stores.retry import RetryPolicy, retrying
from reconciler.stores.s3 import MIB, S3Store
from reconciler.stores.s3.direct.raw import DirectTransport
from reconciler.stores.s3.transport import Buffer
from tests.faults.proxy import Fault, FaultProxy

pytestmark = pytest.mark.integration

CHECKSUMS = ["when_supported", "when_required"]  # CRC64NVME per part, or Content-MD5 per part


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def distinct_parts(count: int, part: int, tail: int) -> bytes:
    """Every part different, so a buffer reused too early would show in what is stored."""
    return b"".join(bytes([i + 1]) * 64 + os.urandom(part - 64) for i in range(count)) + os.urandom(tail)


def store(endpoint: str, bucket: str, checksum: str, **kw: Any) -> S3Store:
    spec = S3StoreSpec("s3", bucket, endpoint=endpoint, region="us-east-1", addressing_style="path",
                       checksum=checksum)
    s3 = S3Store(spec, multipart_threshold=5 * MIB, part_size=5 * MIB, **kw)
    assert isinstance(s3.transport, DirectTransport), "static credentials in the environment: the direct path"
    return s3


@pytest.fixture(autouse=True)
def env(seaweed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)


@contextmanager
def opened(data: bytes) -> Iterator[BinaryIO]:
    yield io.BytesIO(data)


def opener(path: Path) -> Callable[[], BinaryIO]:
    return lambda: open(path, "rb")  # the store opens it with `with`


def no_botocore_parts(s3: S3Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The part numbers sent on the direct transport, the store's only one (no botocore client to send them)."""
    sent: list[int] = []
    original = DirectTransport.upload_part

    def counting(
        raw: DirectTransport, key: str, upload_id: str, number: int, body: Buffer, params: Mapping[str, Any]
    ) -> str:
        sent.append(number)
        return original(raw, key, upload_id, number, body, params)

    assert isinstance(s3.transport, DirectTransport) and s3._checking is s3.transport
    monkeypatch.setattr(DirectTransport, "upload_part", counting)
    return sent


def nothing_left(seaweed: Any, bucket: str) -> None:
    client = seaweed.client()
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


@pytest.mark.parametrize("checksum", CHECKSUMS)
def test_parts_on_the_direct_path_read_back_equal_through_reused_buffers(
    seaweed: Any, bucket: str, checksum: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two buffers for six parts and three senders: each buffer is refilled while others are in flight.
    s3 = store(seaweed.endpoint, bucket, checksum, max_parts_in_memory=2, part_concurrency=3)
    sent = no_botocore_parts(s3, monkeypatch)
    data = distinct_parts(5, 5 * MIB, 123)
    entry = s3.write("big.bin", lambda: opened(data), size=len(data), md5=md5(data), if_absent=True)
    assert sorted(sent) == [1, 2, 3, 4, 5, 6]
    assert entry.etag is not None and entry.etag.endswith("-6")
    client = seaweed.client()
    got = client.get_object(Bucket=bucket, Key="big.bin")
    assert got["Body"].read() == data
    assert got["Metadata"]["md5"] == md5(data)
    head = client.head_object(Bucket=bucket, Key="big.bin", ChecksumMode="ENABLED")
    assert (head.get("ChecksumType") == "FULL_OBJECT") == (checksum == "when_supported")
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert s3._buffers._kept == [], "an idle store keeps no part memory"


def test_a_real_file_goes_up_in_place_and_the_conditional_complete_still_holds(
    seaweed: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = store(seaweed.endpoint, bucket, "when_supported")
    no_botocore_parts(s3, monkeypatch)
    path = tmp_path / "big.bin"
    data = distinct_parts(2, 5 * MIB, 5)
    path.write_bytes(data)
    s3.write("f", opener(path), size=len(data), md5=md5(data), if_absent=True)
    assert seaweed.client().get_object(Bucket=bucket, Key="f")["Body"].read() == data
    # if_absent goes on the complete: a second upload over the object is refused and aborted.
    with pytest.raises(ObjectChanged):
        s3.write("f", opener(path), size=len(data), md5=md5(data), if_absent=True)
    assert not seaweed.client().list_multipart_uploads(Bucket=bucket).get("Uploads")


@pytest.mark.parametrize("checksum", CHECKSUMS)
def test_a_part_corrupted_in_flight_is_refused_and_nothing_completes(
    seaweed: Any, bucket: str, checksum: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = store(seaweed.endpoint, bucket, checksum)
    original = DirectTransport.upload_part

    def flipping(
        raw: DirectTransport, key: str, upload_id: str, number: int, body: Buffer, headers: Mapping[str, Any]
    ) -> str:
        if number == 2:  # one bit flipped after the checksum header was computed, as on a bad wire
            damaged = bytearray(body)
            damaged[100] ^= 1
            body = damaged
        return original(raw, key, upload_id, number, body, headers)

    monkeypatch.setattr(DirectTransport, "upload_part", flipping)
    data = distinct_parts(2, 5 * MIB, 7)
    with pytest.raises(PermanentStoreError) as refused:
        s3.write("k", lambda: opened(data), size=len(data), md5=md5(data))
    assert refused.value.code == "BadDigest" and "upload part k" in str(refused.value)
    nothing_left(seaweed, bucket)


def test_a_source_changed_while_read_aborts_the_upload(seaweed: Any, bucket: str, tmp_path: Path) -> None:
    s3 = store(seaweed.endpoint, bucket, "when_supported")
    path = tmp_path / "moving.bin"
    data = distinct_parts(3, 5 * MIB, 11)
    path.write_bytes(data)

    class Edited(io.FileIO):
        """The file as read, edited by someone else once its first part is in."""

        def readinto(self, buffer: Any) -> int:
            n = super().readinto(buffer)
            if self.tell() == 5 * MIB:
                with open(path, "r+b") as other:
                    other.seek(12 * MIB)
                    other.write(b"edited meanwhile")
            return n or 0

    @contextmanager
    def source() -> Iterator[BinaryIO]:
        with Edited(path, "rb") as f:
            yield f

    with pytest.raises(PermanentStoreError, match="changed while it was read") as changed:
        s3.write("k", source, size=len(data), md5=md5(data))
    assert changed.value.code == "BadDigest"
    nothing_left(seaweed, bucket)


def proxied(seaweed: Any, bucket: str, faults: list[Fault]) -> tuple[FaultProxy, S3Store]:
    proxy = FaultProxy(seaweed.endpoint, faults, deadline=60)
    return proxy, store(proxy.endpoint, bucket, "when_supported")


def test_a_throttled_part_fails_the_attempt_and_the_retry_layer_uploads_it_all_again(
    seaweed: Any, bucket: str
) -> None:
    proxy, s3 = proxied(seaweed, bucket, [Fault("error", method="PUT", path=r"partNumber=2&", times=1)])
    data = distinct_parts(2, 5 * MIB, 3)
    attempts: list[TransientStoreError] = []

    def on_retry(attempt: int, delay: float, error: TransientStoreError) -> None:
        attempts.append(error)

    write: Callable[[], Any] = lambda: s3.write("k", lambda: opened(data), size=len(data), md5=md5(data))  # noqa: E731
    with proxy:
        retrying(write, RetryPolicy(sleep=lambda _: None), on_retry=on_retry)
    assert proxy.injected("error") == 1
    # One retry layer: the part's 503 went up to it as it was, not resent below it.
    assert [e.code for e in attempts] == ["SlowDown"], [str(e) for e in attempts]
    assert seaweed.client().get_object(Bucket=bucket, Key="k")["Body"].read() == data
    assert not seaweed.client().list_multipart_uploads(Bucket=bucket).get("Uploads"), "the first attempt aborted"


def test_a_part_whose_connection_drops_is_resent_at_once_from_its_buffer(seaweed: Any, bucket: str) -> None:
    proxy, s3 = proxied(seaweed, bucket, [Fault("reset", method="PUT", path=r"partNumber=3&", times=1)])
    data = distinct_parts(3, 5 * MIB, 9)
    with proxy:
        s3.write("k", lambda: opened(data), size=len(data), md5=md5(data))
    assert proxy.injected("reset") == 1
    sends = [line for line in proxy.log.lines if "partNumber=3&" in line]
    assert len(sends) == 2, proxy.log.lines
    assert seaweed.client().get_object(Bucket=bucket, Key="k")["Body"].read() == data
