"""The demo's actor images are real JPEGs: segments well formed, and the scan decodes to the grey asked for."""

from __future__ import annotations

import struct

import pytest

from reconciler.dev.tinyjpeg import tiny_jpeg


def segments(data: bytes) -> tuple[dict[int, list[bytes]], bytes]:
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    found: dict[int, list[bytes]] = {}
    at = 2
    while True:
        marker, length = struct.unpack(">HH", data[at : at + 4])
        body = data[at + 4 : at + 2 + length]
        found.setdefault(marker, []).append(body)
        at += 2 + length
        if marker == 0xFFDA:  # start of scan: entropy-coded data runs to EOI
            return found, data[at:-2]


def huffman(table: bytes) -> dict[str, int]:
    """Decoder view of a DHT body: bit string -> symbol."""
    counts, symbols = table[1:17], table[17:]
    codes: dict[str, int] = {}
    code = index = 0
    for length, count in enumerate(counts, start=1):
        for _ in range(count):
            codes[format(code, f"0{length}b")] = symbols[index]
            code += 1
            index += 1
        code <<= 1
    return codes


def decode_dc(scan: bytes, dc: dict[str, int], ac: dict[str, int]) -> int:
    bits = "".join(format(b, "08b") for b in scan.replace(b"\xff\x00", b"\xff"))
    at = 1
    while bits[:at] not in dc:
        at += 1
    category = dc[bits[:at]]
    extra = bits[at : at + category]
    at += category
    value = int(extra, 2) if category else 0
    if category and extra[0] == "0":
        value -= (1 << category) - 1
    rest = bits[at:]
    eob = next(code for code, symbol in ac.items() if symbol == 0)
    assert rest.startswith(eob) and set(rest[len(eob) :]) <= {"1"}  # end of block, then 1-padding only
    return value


@pytest.mark.parametrize("grey", [0, 1, 37, 127, 128, 200, 255])
def test_scan_decodes_to_the_requested_grey(grey: int) -> None:
    found, scan = segments(tiny_jpeg(grey, f"#{grey}"))
    assert found[0xFFC0] == [bytes([8, 0, 8, 0, 8, 1, 1, 0x11, 0])]  # baseline, 8x8, one component
    assert found[0xFFDB] == [b"\x00" + b"\x01" * 64]
    dc_table, ac_table = sorted(found[0xFFC4], key=lambda t: t[0])
    dc = decode_dc(scan, huffman(dc_table), huffman(ac_table))
    # A flat block's DC coefficient with every quantiser 1: 8 * (level - 128); its pixels are that level.
    assert dc == 8 * (grey - 128)
    assert found[0xFFFE] == [f"#{grey}".encode()]


def test_images_are_deterministic_and_comments_tell_them_apart() -> None:
    assert tiny_jpeg(9, "a") == tiny_jpeg(9, "a")
    assert tiny_jpeg(9, "a") != tiny_jpeg(9, "b")
    with pytest.raises(ValueError):
        tiny_jpeg(256)
