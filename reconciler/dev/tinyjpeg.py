"""Tiny valid JPEG files for demo actors: 8x8 grey baseline JPEGs, deterministic, no imaging library."""

from __future__ import annotations

import struct

# JPEG Annex K luminance DC table: code lengths 1..16 and the categories they encode.
_DC_COUNTS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_SYMBOLS = tuple(range(12))
# The AC table needs only end-of-block: every block is flat.
_AC_COUNTS = (1,) + (0,) * 15
_AC_SYMBOLS = (0x00,)


def _codes(counts: tuple[int, ...], symbols: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """Canonical Huffman codes (value, length) per symbol, as a decoder derives them from DHT."""
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    index = 0
    for length, count in enumerate(counts, start=1):
        for _ in range(count):
            codes[symbols[index]] = (code, length)
            code += 1
            index += 1
        code <<= 1
    return codes


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">HH", marker, len(body) + 2) + body


def _dht(table_class: int, counts: tuple[int, ...], symbols: tuple[int, ...]) -> bytes:
    return _segment(0xFFC4, bytes([table_class << 4]) + bytes(counts) + bytes(symbols))


def _scan(grey: int) -> bytes:
    dc = 8 * (grey - 128)  # DC of a flat 8x8 block after level shift, quantised by 1
    category = abs(dc).bit_length()
    extra = dc if dc >= 0 else dc + (1 << category) - 1
    dc_code, dc_len = _codes(_DC_COUNTS, _DC_SYMBOLS)[category]
    eob_code, eob_len = _codes(_AC_COUNTS, _AC_SYMBOLS)[0x00]
    bits = format(dc_code, f"0{dc_len}b") + (format(extra, f"0{category}b") if category else "")
    bits += format(eob_code, f"0{eob_len}b")
    bits += "1" * (-len(bits) % 8)  # pad with ones, as the standard asks
    out = bytearray()
    for i in range(0, len(bits), 8):
        byte = int(bits[i : i + 8], 2)
        out.append(byte)
        if byte == 0xFF:
            out.append(0x00)  # byte stuffing
    return bytes(out)


def tiny_jpeg(grey: int, comment: str = "") -> bytes:
    """An 8x8 single-colour greyscale JPEG; `comment` (a COM segment) makes otherwise equal images differ."""
    if not 0 <= grey <= 255:
        raise ValueError(f"grey level must be 0..255, got {grey}")
    parts = [
        b"\xff\xd8",
        _segment(0xFFE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
    ]
    if comment:
        parts.append(_segment(0xFFFE, comment.encode("utf-8")))
    parts += [
        _segment(0xFFDB, b"\x00" + b"\x01" * 64),
        _segment(0xFFC0, bytes([8]) + struct.pack(">HH", 8, 8) + bytes([1, 1, 0x11, 0])),
        _dht(0, _DC_COUNTS, _DC_SYMBOLS),
        _dht(1, _AC_COUNTS, _AC_SYMBOLS),
        _segment(0xFFDA, bytes([1, 1, 0x00, 0, 63, 0])),
        _scan(grey),
        b"\xff\xd9",
    ]
    return b"".join(parts)
