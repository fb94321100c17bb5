"""Human-readable sizes, shared by every renderer."""

from __future__ import annotations


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_size(value: int | str) -> int:
    """Bytes from an integer or a string like "1 MB" / "64MiB" (the spec schema admits only these shapes)."""
    if isinstance(value, int):
        return value
    text = value.strip().lower()
    number = text.rstrip("kmgib ")
    unit = text[len(number) :].strip()
    return int(float(number) * _UNITS[unit])
