"""S3 downloads resume where a dropped connection broke, pinned to the version first read."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import botocore.exceptions
import pytest

from reconciler.model import S3StoreSpec
from reconciler.stores.base import TransientStoreError
from reconciler.stores.s3.store import S3Store
from reconciler.stores.s3.upload import MIB, PartBuffers, part_size_for, read_into

DATA = bytes(range(256)) * 4096  # 1 MiB


class Body:
    def __init__(self, data: bytes, break_after: int | None) -> None:
        self.data, self.pos, self.break_after = data, 0, break_after

    def read(self, n: int | None = None) -> bytes:
        if self.break_after is not None and self.pos >= self.break_after:
            raise botocore.exceptions.ReadTimeoutError(endpoint_url="http://s3.test")
        end = len(self.data) if n is None else self.pos + n
        if self.break_after is not None:
            end = min(end, self.break_after)
        chunk = self.data[self.pos : end]
        self.pos += len(chunk)
        return chunk

    def close(self) -> None:
        pass


class FlakyClient:
    """get_object whose first `breaks` bodies drop the connection after `after` bytes."""

    def __init__(self, breaks: int, after: int = 300 * 1024) -> None:
        self.breaks = breaks
        self.after = after
        self.calls: list[dict[str, Any]] = []

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        start = int(kwargs["Range"].split("=")[1].rstrip("-")) if "Range" in kwargs else 0
        broken = len(self.calls) <= self.breaks
        return {"Body": Body(DATA[start:], self.after if broken else None), "ETag": '"v1"'}


def s3(client: FlakyClient) -> S3Store:
    return S3Store(S3StoreSpec("s3", "b", endpoint="http://s3.test"), client=client)  # type: ignore[arg-type]


def read_all(store: S3Store) -> bytes:
    out = []
    with store.open("k") as body:
        while chunk := body.read(64 * 1024):
            out.append(chunk)
    return b"".join(out)


def test_dropped_connections_resume_with_a_ranged_get_pinned_by_if_match() -> None:
    client = FlakyClient(breaks=2)
    assert hashlib.md5(read_all(s3(client))).digest() == hashlib.md5(DATA).digest()
    assert [c.get("Range") for c in client.calls] == [None, "bytes=307200-", "bytes=614400-"]
    assert [c.get("IfMatch") for c in client.calls] == [None, '"v1"', '"v1"']


def test_a_connection_that_keeps_dropping_is_a_transient_error() -> None:
    with pytest.raises(TransientStoreError):
        read_all(s3(FlakyClient(breaks=100, after=0)))


def test_part_size_grows_only_past_ten_thousand_parts() -> None:
    store = s3(FlakyClient(0))
    assert part_size_for(10 * 1024 * MIB, store.part_size) == store.part_size
    assert part_size_for(200 * 1024 * MIB, store.part_size) == 21 * MIB


class Dribble:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int = -1) -> bytes:
        chunk, self.data = self.data[: min(n, 3)], self.data[min(n, 3) :]
        return chunk


def test_parts_are_filled_even_from_a_stream_that_returns_short_reads() -> None:
    stream = Dribble(b"abcdefghij")
    buffer = bytearray(8)
    assert read_into(stream, buffer) == 8 and buffer == b"abcdefgh"  # type: ignore[arg-type]
    assert read_into(stream, buffer) == 2 and buffer[:2] == b"ij"  # type: ignore[arg-type]
    assert read_into(stream, buffer) == 0  # type: ignore[arg-type]


class DribbleInto(Dribble):
    def readinto(self, into: bytearray | memoryview) -> int:
        chunk = self.read(len(into))
        into[: len(chunk)] = chunk
        return len(chunk)


def test_parts_are_read_in_place_and_filled_from_short_readintos() -> None:
    stream = DribbleInto(b"abcdefghij")
    buffer = bytearray(b"x" * 8)
    assert read_into(stream, buffer) == 8 and buffer == b"abcdefgh"  # type: ignore[arg-type]
    assert read_into(stream, buffer) == 2 and buffer == b"ijcdefgh"  # type: ignore[arg-type]
    assert read_into(stream, buffer) == 0  # type: ignore[arg-type]


def test_part_buffers_are_reused_never_more_than_the_slots_and_let_go_when_idle() -> None:
    buffers = PartBuffers(2)
    with buffers.in_use():
        first, second = buffers.take(8), buffers.take(8)
        assert first is not second
        taken: list[bytearray] = []
        waiting = threading.Thread(target=lambda: taken.append(buffers.take(8)))
        waiting.start()
        waiting.join(0.2)
        assert waiting.is_alive() and not taken, "a third buffer waits for a slot"
        buffers.give_back(first)
        waiting.join(5)
        assert taken == [first] and taken[0] is first, "the buffer given back is the one reused"
        buffers.give_back(second)
        assert buffers.take(16) is not second and buffers._kept == [], "a buffer of another size is let go"
    buffers.give_back(taken[0])
    assert buffers._kept == [], "no upload under way: nothing is kept"
