"""The record index: counts and spans as a line-by-line reading gives them, whatever the chunking."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.loader import index
from reconciler.loader.formats import RecordFormat, jsonl_lines
from reconciler.loader.index import IndexStore, RecordIndex, Span, build


def by_lines(body: bytes, span_bytes: int, span_records: int) -> tuple[int, list[Span]]:
    """The reference: walk the lines one by one, cut a span after the line that fills it."""
    spans: list[Span] = []
    start = lines_before = in_span = total = position = 0
    parts = body.split(b"\n")
    for number, line in enumerate(parts, 1):
        complete = number < len(parts)
        if not complete and not line:
            break
        if line and not line.isspace():
            in_span += 1
            total += 1
        position += len(line) + complete
        if complete and (position - start >= span_bytes or in_span >= span_records):
            spans.append(Span(start, position, lines_before, in_span, hashlib.md5(body[start:position]).hexdigest()))
            start, lines_before, in_span = position, number, 0
    if len(body) > start:
        spans.append(Span(start, len(body), lines_before, in_span, hashlib.md5(body[start:]).hexdigest()))
    return total, spans


lines = st.lists(st.sampled_from([b"", b" ", b"\t\r", b"{}", b'{"a": 1}', b"x" * 40, b'{"t": "\xc3\xa9"}\r']),
                 max_size=80)


@settings(max_examples=300, deadline=None)
@given(
    lines=lines,
    newline_at_end=st.booleans(),
    chunk=st.integers(1, 64),
    span_bytes=st.integers(1, 200),
    span_records=st.integers(1, 12),
)
def test_counts_and_spans_are_those_of_a_line_by_line_reading(
    lines: list[bytes], newline_at_end: bool, chunk: int, span_bytes: int, span_records: int
) -> None:
    body = b"\n".join(lines) + (b"\n" if newline_at_end and lines else b"")
    with (
        mock.patch.object(index, "CHUNK", chunk),
        mock.patch.object(index, "SPAN_BYTES", span_bytes),
        mock.patch.object(index, "SPAN_RECORDS", span_records),
    ):
        split = build(io.BytesIO(body), key="k", fmt=RecordFormat.JSONL, split=True)
        whole = build(io.BytesIO(body), key="k", fmt=RecordFormat.JSONL, split=False)
    total, spans = by_lines(body, span_bytes, span_records)
    assert (split.records, list(split.spans)) == (total, spans)
    assert (whole.records, whole.spans, whole.md5, whole.size) == (total, (), hashlib.md5(body).hexdigest(), len(body))
    for span in split.spans:  # each span read alone gives its own records, numbered from its line offset
        got = list(jsonl_lines(io.BytesIO(body[span.start : span.stop])))
        assert len(got) == span.records
    assert RecordIndex.from_json(split.to_json()) == split


def test_a_kept_index_that_is_damaged_or_of_other_bytes_is_not_used(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    body = b'{"a": 1}\n' * 5
    built = build(io.BytesIO(body), key="k", fmt=RecordFormat.JSONL, split=False)
    store.put(built, RecordFormat.JSONL)
    assert store.get(built.md5, RecordFormat.JSONL) == built
    assert store.get(built.md5, RecordFormat.JSON) is None  # the same bytes as another format: other records
    path = store.path(built.md5, RecordFormat.JSONL)
    other = store.path("0" * 32, RecordFormat.JSONL)
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_text(path.read_text())
    assert store.get("0" * 32, RecordFormat.JSONL) is None  # an index of other bytes under this md5's name
    path.write_text(path.read_text()[:-3])
    assert store.get(built.md5, RecordFormat.JSONL) is None  # half a file: built again
