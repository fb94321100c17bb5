"""One parse_size for the specs (min_size, final_dataset shard bytes) and the loader (cache_limit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.loader.cache import ObjectCache
from reconciler.units import SIZE_UNITS, parse_size

# What each caller accepted before they shared one function: the spec schema's shapes ("1 MB", "64MiB",
# "1.5 KiB", "10") and the loader's ("20GiB", "500 MB", "1024", terabytes, any case).
ACCEPTED = {
    "1 MB": 10**6,
    "64MiB": 64 * 2**20,
    "1.5 KiB": 1536,
    "10": 10,
    "20GiB": 20 * 2**30,
    "500 MB": 500 * 10**6,
    "2 TB": 2 * 10**12,
    "3TiB": 3 * 2**40,
    "7 b": 7,
    " 4 kib ": 4096,
}


@pytest.mark.parametrize(("text", "expected"), sorted(ACCEPTED.items()))
def test_both_callers_inputs_are_accepted(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_the_loader_cache_limit_reads_the_same_units(tmp_path: Path) -> None:
    assert ObjectCache(tmp_path, "1.5 KiB").limit == 1536
    with pytest.raises(ValueError, match="negative"):
        ObjectCache(tmp_path, -1)


@pytest.mark.parametrize("bad", ["lots", "", "MB", "1 XB", "-5", "1e3", "1,000", "1 mbps"])
def test_anything_else_is_one_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_size(-1)


@given(st.integers(0, 10**6), st.sampled_from(sorted(SIZE_UNITS)), st.sampled_from(["", " ", "  "]),
       st.booleans())
def test_a_count_times_its_unit(count: int, unit: str, space: str, upper: bool) -> None:
    text = f"{count}{space}{unit.upper() if upper else unit}"
    assert parse_size(text) == count * SIZE_UNITS[unit]
    assert parse_size(count) == count
