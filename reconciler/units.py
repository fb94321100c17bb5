"""Human-readable sizes, shared by every renderer."""

from __future__ import annotations

import re


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


# Decimal units are powers of 1000 and binary ones powers of 1024, as their names say ("MB" is 10**6, "MiB"
# 2**20), in any case. The spec schema admits B, K/M/G with or without the i; the loader's cache_limit also
# takes T: one table, so a size means the same bytes wherever it is written.
SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Bytes from a count of bytes or a string such as "1 MB", "64MiB", "1.5 KiB", "20GiB", "10".

    A fraction of a unit is rounded down to whole bytes. Anything else (a negative count, an unknown unit,
    an exponent, a separator) raises ValueError naming the value.
    """
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size must not be negative, got {value}")
        return value
    match = _SIZE.match(value)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in SIZE_UNITS:
        raise ValueError(f'expected a size such as 20GiB, 500 MB or 1024, got "{value}"')
    return int(float(match.group(1)) * SIZE_UNITS[unit])
