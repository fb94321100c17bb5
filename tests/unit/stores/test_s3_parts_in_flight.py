"""How many parts a big upload keeps in flight: enough to cover the link's bandwidth x round trip, within the
store's part buffers (stores/s3/upload.py)."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.stores.s3.upload import (
    LINK_BYTES_PER_S,
    FileParts,
    PartBuffers,
    crc64_b64,
    crc64nvme,
    parts_in_flight,
)

round_trips = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)
part_sizes = st.integers(min_value=5 * 2**20, max_value=5 * 2**30)
bounds = st.tuples(st.integers(min_value=1, max_value=16), st.integers(min_value=1, max_value=64))


@given(round_trips, round_trips, part_sizes, bounds)
def test_parts_in_flight_grow_with_the_round_trip_and_stay_within_the_buffers(
    near: float, far: float, part_size: int, least_most: tuple[int, int]
) -> None:
    least, most = least_most
    near, far = sorted((near, far))
    n = parts_in_flight(near, part_size, least=least, most=most)
    assert 1 <= n <= most
    assert n >= min(least, most)
    assert parts_in_flight(far, part_size, least=least, most=most) >= n


@given(round_trips, part_sizes, bounds)
def test_uncapped_the_parts_in_flight_cover_bandwidth_times_round_trip(
    round_trip: float, part_size: int, least_most: tuple[int, int]
) -> None:
    least, _ = least_most
    n = parts_in_flight(round_trip, part_size, least=least, most=10**9)
    # Every part but the one waiting for its answer is on the wire meanwhile.
    assert (n - 1) * part_size >= LINK_BYTES_PER_S * round_trip


def test_a_far_server_gets_every_buffer_sending_at_once() -> None:
    part, slots = 1024, 6
    data = bytes(range(256)) * (part * slots // 256)
    together = threading.Barrier(slots, timeout=60)  # passes only once `slots` parts are being sent at once

    def send(key: str, upload_id: str, number: int, chunk: memoryview, integrity: dict[str, str]) -> str:
        together.wait()
        return f"etag-{number}"

    @contextmanager
    def source() -> Iterator[BinaryIO]:
        yield io.BytesIO(data)

    parts = FileParts("k", source, hashlib.md5(data).hexdigest(), part, 1, PartBuffers(slots), False, send)
    listed, _ = parts.send_parts("upload", 1.0)  # a round trip no one part could cover
    assert [p["PartNumber"] for p in listed] == list(range(1, slots + 1))


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=1, max_size=4096), part=st.integers(min_value=1, max_value=700),
       slots=st.integers(min_value=1, max_value=4))
def test_the_whole_files_crc64nvme_combined_from_its_parts_is_the_files_own(data: bytes, part: int, slots: int) -> None:
    @contextmanager
    def source() -> Iterator[BinaryIO]:
        yield io.BytesIO(data)

    def send(key: str, upload_id: str, number: int, chunk: memoryview, integrity: dict[str, str]) -> str:
        return f"etag-{number}"

    parts = FileParts("k", source, hashlib.md5(data).hexdigest(), part, 2, PartBuffers(slots), True, send)
    listed, whole = parts.send_parts("upload", 0.0)
    assert len(listed) == -(-len(data) // part)
    assert whole == {"ChecksumCRC64NVME": crc64_b64(crc64nvme(data)), "ChecksumType": "FULL_OBJECT"}
