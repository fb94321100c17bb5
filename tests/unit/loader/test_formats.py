from __future__ import annotations

import gzip
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.loader.formats import DatasetFormatError, RecordFormat, Skipped, format_of, iter_records

# ijson's C backend parses integers into a signed 64-bit value, its edges excluded.
values = st.one_of(st.integers(-(2**63) + 1, 2**63 - 1), st.text(max_size=8), st.booleans(), st.none())
records = st.lists(st.dictionaries(st.text(max_size=5), values, max_size=4), max_size=20)


@given(records)
def test_jsonl_json_and_gzip_yield_the_same_records(rows: list[dict[str, object]]) -> None:
    jsonl = "".join(json.dumps(r) + "\n" for r in rows).encode()
    as_array = json.dumps(rows, indent=1).encode()
    for fmt, body in (
        (RecordFormat.JSONL, jsonl),
        (RecordFormat.JSON, as_array),
        (RecordFormat.JSONL_GZ, gzip.compress(jsonl)),
    ):
        assert list(iter_records(io.BytesIO(body), key="k", fmt=fmt)) == rows


def test_a_top_level_object_is_one_record() -> None:
    assert list(iter_records(io.BytesIO(b'  {"a": 1}'), key="k", fmt=RecordFormat.JSON)) == [{"a": 1}]


def test_malformed_line_names_key_and_line() -> None:
    body = b'{"a": 1}\n\n{"a": \n{"a": 3}\n'
    with pytest.raises(DatasetFormatError) as err:
        list(iter_records(io.BytesIO(body), key="datasets/x.jsonl", fmt=RecordFormat.JSONL))
    assert (err.value.key, err.value.line) == ("datasets/x.jsonl", 3)
    assert "datasets/x.jsonl: line 3" in str(err.value)


def test_skip_counts_bad_lines_and_goes_on() -> None:
    skipped: list[Skipped] = []
    body = b'{"a": 1}\n[1]\nnope\n{"a": 2}\n'
    got = list(iter_records(io.BytesIO(body), key="k", fmt=RecordFormat.JSONL, on_skip=skipped.append))
    assert got == [{"a": 1}, {"a": 2}]
    assert [s.line for s in skipped] == [2, 3]


def test_truncated_array_raises_even_when_skipping() -> None:
    with pytest.raises(DatasetFormatError):
        list(iter_records(io.BytesIO(b'[{"a": 1}, {"a": '), key="k", fmt=RecordFormat.JSON, on_skip=lambda s: None))


def test_format_by_name() -> None:
    assert format_of("a/b.jsonl.gz") is RecordFormat.JSONL_GZ
    assert format_of("a/b.JSONL") is RecordFormat.JSONL
    assert format_of("a/b.json") is RecordFormat.JSON
    assert format_of("a/b.bin", "jsonl") is RecordFormat.JSONL
    with pytest.raises(ValueError):
        format_of("a/b.csv")
