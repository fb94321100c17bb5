"""Issue 23, items 11-14: what a hostile record or object does to decoding.

An integer past 64 bits must not become a rounded float (11); a `.jsonl.gz` that is not gzip, or is cut
short, is one clear error naming the object (12); a lone surrogate is one clear error naming object and
line, not a bare UnicodeEncodeError later (13); one huge line costs linear work, not quadratic (14).
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import IO, Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.apply.final import canonical_line
from reconciler.loader.dataset import StreamingDataset
from reconciler.loader.formats import (
    DatasetFormatError,
    Exact,
    LineSplitter,
    RecordFormat,
    decode_line,
    decode_marked,
    holds_long_run,
    iter_records,
    iter_slots,
)
from reconciler.loader.resolve import SourceObject
from reconciler.stores.memory import MemoryStore
from tests.hostile.loader_world import PROCESSED, loader_world, opener
from tests.integration.pixelenv import pixel

BIG = 2**64  # one past uint64: orjson gives 1.8446744073709552e+19
NEGATIVE = -(2**63) - 1  # one past int64


def dataset(body: bytes, key: str, fmt: RecordFormat, on_error: Any = "raise") -> StreamingDataset:
    store = MemoryStore("m")
    store.write(key, opener(body), size=len(body), md5=None)
    return StreamingDataset([SourceObject("m", key, None, len(body), fmt)], {"m": store}, on_error=on_error)


# --- 11: integers beyond 64 bits --------------------------------------------------------------------------


@given(st.one_of(st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1), st.integers()))
def test_an_integer_of_any_size_is_read_exactly_not_rounded_to_a_float(value: int) -> None:
    line = json.dumps({"n": value, "inner": [{"m": value}]}).encode()
    record = decode_line(line, key="k", number=1)
    assert record == {"n": value, "inner": [{"m": value}]}
    assert type(record["n"]) is int


def test_a_big_integer_survives_the_loader_and_the_final_compiles_canonical_line() -> None:
    body = b'{"id": 1, "n": 18446744073709551616, "neg": -9223372036854775809}\n'
    [record] = list(dataset(body, "big.jsonl", RecordFormat.JSONL))
    assert record["n"] == BIG and record["neg"] == NEGATIVE
    [compiled] = list(iter_records(io.BytesIO(gzip.compress(body)), key="big.jsonl.gz", fmt=RecordFormat.JSONL_GZ))
    assert b'"n":18446744073709551616' in canonical_line(compiled)


# The scan for long digit runs a chunk at a time (formats.holds_long_run, LineSplitter.marked_lines): orjson
# rounds an integer past 64 bits, so a line holding one must be marked.

DIGIT_RUNS = st.lists(st.tuples(st.integers(0, 30), st.sampled_from([b" ", b"a", b".", b"-", b'"'])), max_size=12)


def with_runs(runs: list[tuple[int, bytes]]) -> bytes:
    return b"".join(b"7" * length + sep for length, sep in runs)


@given(DIGIT_RUNS, st.integers(0, 12))
def test_the_sampled_scan_finds_exactly_the_runs_of_19_digits(runs: list[tuple[int, bytes]], shift: int) -> None:
    data = b"x" * shift + with_runs(runs)
    assert holds_long_run(data) == (b"7" * 19 in data)


@given(st.lists(DIGIT_RUNS.map(with_runs), max_size=8), st.integers(1, 80))
def test_no_line_with_a_long_digit_run_reaches_orjson_unmarked(pieces: list[bytes], chunk: int) -> None:
    lines = [b'{"n": ' + (piece.strip(b' a.-"') or b"0")[:40] + b', "t": "' + piece + b'"}' for piece in pieces]
    body = b"\n".join(lines)
    splitter = LineSplitter(chunk)
    for number, line in splitter.marked_lines(io.BytesIO(body)):
        raw = line.line if isinstance(line, Exact) else line
        assert raw == lines[number - 1]
        if b"7" * 19 in raw:
            assert isinstance(line, Exact), raw
        try:
            expected = json.loads(raw)
        except ValueError:
            continue
        assert decode_marked(line, key="k", number=number) == expected


def test_a_chunk_of_ordinary_records_is_cleared_whole_not_scanned_line_by_line() -> None:
    record = json.dumps({"id": 123456789012, "quality": 0.12345678, "text": "phone 555 0100 at 10:30"}).encode()
    clean = b"\n".join([record] * 5000) + b"\n"
    body = clean + b'{"n": 18446744073709551616}'
    splitter = LineSplitter(len(clean))
    marked = list(splitter.marked_lines(io.BytesIO(body)))
    # Only the last line, the one in a chunk the sampled scan could not clear, was looked at on its own.
    assert splitter.guarded == 1
    assert [type(line) for _, line in marked] == [bytes] * 5000 + [Exact]
    assert decode_marked(marked[-1][1], key="k", number=5001) == {"n": BIG}


# --- 12: bad gzip ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_jsonl_gz_that_is_not_gzip_is_one_error_naming_the_object(on_error: str) -> None:
    with pytest.raises(DatasetFormatError, match=r"shards/plain\.jsonl\.gz: .*gzip"):
        list(dataset(b'{"a": 1}\n', "shards/plain.jsonl.gz", RecordFormat.JSONL_GZ, on_error))


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_truncated_jsonl_gz_is_one_error_naming_the_object(on_error: str) -> None:
    whole = gzip.compress(b"".join(b'{"a": %d}\n' % i for i in range(20000)))
    with pytest.raises(DatasetFormatError, match=r"shards/cut\.jsonl\.gz: line \d+: .*gzip"):
        list(dataset(whole[: len(whole) // 2], "shards/cut.jsonl.gz", RecordFormat.JSONL_GZ, on_error))
    with pytest.raises(DatasetFormatError, match=r"cut\.jsonl\.gz"):
        list(iter_records(io.BytesIO(whole[:-20]), key="cut.jsonl.gz", fmt=RecordFormat.JSONL_GZ))


# --- 13: a lone surrogate ---------------------------------------------------------------------------------


def test_a_lone_surrogate_is_an_error_naming_object_and_line() -> None:
    body = b'{"a": "fine"}\n{"a": "\\ud800"}\n'
    with pytest.raises(DatasetFormatError, match=r"lone\.jsonl: line 2: .*surrogate"):
        list(dataset(body, "lone.jsonl", RecordFormat.JSONL))
    skipping = dataset(body, "lone.jsonl", RecordFormat.JSONL, on_error="skip")
    assert list(skipping) == [{"a": "fine"}] and skipping.skipped == 1
    # A pair is a character, not an error.
    assert decode_line(b'{"a": "\\ud83d\\ude00"}', key="k", number=1) == {"a": "\U0001f600"}


def test_the_final_compile_reads_a_lone_surrogate_as_an_error_naming_source_and_line() -> None:
    body = b'{"a": 1}\n\n{"a": "x\\udfff"}\n'
    with pytest.raises(DatasetFormatError, match=r"data:src\.jsonl: line 3: .*surrogate"):
        for record in iter_records(io.BytesIO(body), key="data:src.jsonl", fmt=RecordFormat.JSONL):
            canonical_line(record)


class Trickle(io.RawIOBase):
    """At most `step` bytes per read."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.position = data, step, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.data[self.position : self.position + min(self.step, len(buffer))]
        buffer[: len(chunk)] = chunk
        self.position += len(chunk)
        return len(chunk)


@pytest.mark.parametrize(
    "document",
    [b'[{"a": 1}, {"a": "x\\ud800y"}]', b'{"a": "\\udc00"}', b'[{"a": "\\ud83d"}, {"b": "\\ude00"}]'],
    ids=["array", "object", "split-pair"],
)
def test_a_lone_surrogate_in_a_json_document_is_an_error_not_a_question_mark(document: bytes) -> None:
    # ijson's C backend read "\ud800" as "?": a silent change of the value.
    with pytest.raises(DatasetFormatError, match=r"doc\.json: .*lone surrogate"):
        list(iter_records(io.BytesIO(document), key="doc.json", fmt=RecordFormat.JSON))


@given(st.lists(st.sampled_from(["a", "\\", "\\\\", "\\ud800", "\\udc00", "\\ud83d\\ude00", "\\n", "é"]),
                max_size=12), st.integers(1, 16))
def test_a_json_document_is_refused_exactly_when_it_holds_a_lone_surrogate(pieces: list[str], step: int) -> None:
    text = "".join(pieces)
    try:
        value = json.loads(f'"{text}"')
    except ValueError:
        return
    document = b'[{"t": "' + text.encode() + b'"}]'
    lone = any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    stream = cast(IO[bytes], Trickle(document, step))  # reads cut escapes and backslash runs anywhere
    if lone:
        with pytest.raises(DatasetFormatError, match="lone surrogate"):
            list(iter_records(stream, key="d.json", fmt=RecordFormat.JSON))
    else:
        assert list(iter_records(stream, key="d.json", fmt=RecordFormat.JSON)) == [{"t": value}]


# --- 14: one huge line -------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [7, 64, 4096])
def test_one_huge_line_is_assembled_with_linear_copying(chunk: int) -> None:
    huge = b'{"text": "' + b"x" * 300_000 + b'"}'
    body = b'{"a": 1}\n' + huge + b"\n" + b'{"b": 2}' + b"\n" + huge
    splitter = LineSplitter(chunk)
    got = list(splitter.lines(io.BytesIO(body)))
    assert got == [(1, b'{"a": 1}'), (2, huge), (3, b'{"b": 2}'), (4, huge)]
    # Each byte of a line spanning chunks is copied into it a bounded number of times: quadratic
    # reassembly copied the growing line once per chunk (gigabytes here at 7-byte chunks).
    assert splitter.copied <= 2 * len(body)


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20), st.integers(1, 50))
def test_lines_are_the_same_whatever_the_chunk_size(lines: list[bytes], chunk: int) -> None:
    body = b"\n".join(lines)
    expected = [(n, line) for n, line in enumerate(body.split(b"\n"), 1) if line and not line.isspace()]
    assert list(LineSplitter(chunk).lines(io.BytesIO(body))) == expected
    slots = iter_slots(io.BytesIO(body), key="k", fmt=RecordFormat.JSONL)
    assert [(n, line.line if isinstance(line, Exact) else line) for n, line in slots] == expected


# --- pixel cat, on the real server ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_pixel_cat_names_the_object_and_exits_1_on_bad_gzip_and_lone_surrogates_and_keeps_big_integers(
    tmp_path: Path, seaweed: Any, bucket: str, aws_env: dict[str, str]
) -> None:
    world = loader_world(tmp_path, seaweed.endpoint, seaweed.client(), bucket, aws_env)
    world.put(f"{PROCESSED}cot/notgz.jsonl.gz", b'{"a": 1}\n')
    whole = gzip.compress(b"".join(b'{"a": %d}\n' % i for i in range(20000)))
    world.put(f"{PROCESSED}cot/cut.jsonl.gz", whole[: len(whole) // 2])
    world.put(f"{PROCESSED}cot/lone.jsonl", b'{"a": "\\ud800"}\n')
    world.put(f"{PROCESSED}cot/big.jsonl", b'{"n": 18446744073709551616}\n')
    env = world.cli_env()
    for name, wanted in [("notgz.jsonl.gz", "notgz.jsonl.gz"), ("cut.jsonl.gz", "cut.jsonl.gz"),
                         ("lone.jsonl", "lone.jsonl: line 1")]:
        for on_error in ("raise", "skip"):
            done = pixel(["cat", name, "--on-error", on_error, "--specs", str(world.specs)], env)
            if name == "lone.jsonl" and on_error == "skip":
                assert done.code == 0 and "1 malformed record(s) skipped" in done.err
                continue
            assert done.code == 1, (name, done.out, done.err)
            assert wanted in done.err and "Traceback" not in done.err and "Aborted" not in done.err, done.err
    big = pixel(["cat", "big.jsonl", "--specs", str(world.specs)], env)
    assert big.code == 0, big.err
    assert big.out.strip() == '{"n":18446744073709551616}'
