"""Records out of a byte stream: JSON Lines, a JSON document, and gzip-compressed JSON Lines.

Pure decoding, no store and no network: the loader and the final-dataset
compiler both hand it a readable binary stream (an S3 body, a cached file) and
get records back while the bytes arrive. Memory is one chunk plus one record,
whatever the object's size: a top-level JSON array is streamed element by
element with ijson instead of being parsed whole.
"""

from __future__ import annotations

import enum
import gzip
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

import orjson

CHUNK = 1024 * 1024


class RecordFormat(enum.StrEnum):
    JSONL = "jsonl"
    JSON = "json"
    JSONL_GZ = "jsonl.gz"


class DatasetFormatError(ValueError):
    """A record could not be decoded: names the object key and the line (or item) it is on."""

    def __init__(self, key: str, line: int, reason: str, *, unit: str = "line") -> None:
        super().__init__(f"{key}: {unit} {line}: {reason}")
        self.key = key
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record passed over with on_error='skip': where it was and why."""

    key: str
    line: int
    reason: str


def format_of(key: str, declared: str | None = None) -> RecordFormat:
    """The format of an object: the declared one, else by the key's ending."""
    if declared:
        return RecordFormat(declared)
    lower = key.lower()
    if lower.endswith((".jsonl.gz", ".ndjson.gz")):
        return RecordFormat.JSONL_GZ
    if lower.endswith((".jsonl", ".ndjson")):
        return RecordFormat.JSONL
    if lower.endswith(".json"):
        return RecordFormat.JSON
    raise ValueError(f"{key}: cannot tell the record format from the name (expected .jsonl, .json or .jsonl.gz)")


OnSkip = Callable[[Skipped], None]


def iter_records(
    stream: IO[bytes],
    *,
    key: str,
    fmt: RecordFormat,
    on_skip: OnSkip | None = None,
) -> Iterator[dict[str, Any]]:
    """Every record of `stream` in order.

    A bad record raises DatasetFormatError, or is passed to `on_skip` and left out when that is given.
    """
    if fmt is RecordFormat.JSON:
        yield from _json_document(stream, key=key, on_skip=on_skip)
        return
    if fmt is RecordFormat.JSONL_GZ:
        with gzip.GzipFile(fileobj=stream, mode="rb") as unzipped:
            yield from iter_jsonl(cast(IO[bytes], unzipped), key=key, on_skip=on_skip)
        return
    yield from iter_jsonl(stream, key=key, on_skip=on_skip)


def iter_jsonl(stream: IO[bytes], *, key: str, on_skip: OnSkip | None = None) -> Iterator[dict[str, Any]]:
    """JSON Lines: one object per line; blank lines are allowed and not counted as records."""
    for number, line in jsonl_lines(stream):
        try:
            record = decode_line(line, key=key, number=number)
        except DatasetFormatError as exc:
            _bad(key, number, exc.reason, on_skip)
            continue
        yield record


def jsonl_lines(stream: IO[bytes], chunk: int = CHUNK) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for every non-blank line, read `chunk` bytes at a time.

    Lines are split here rather than by a buffered reader's iteration: one split of a
    1 MiB chunk is a fraction of the cost of a readline per record, and a reader that
    does not own a line can pass it over without parsing it.
    """
    number = 0
    rest = b""
    while data := stream.read(chunk):
        lines = (rest + data).split(b"\n") if rest else data.split(b"\n")
        rest = lines.pop()
        for line in lines:
            number += 1
            if line and not line.isspace():
                yield number, line
    if rest and not rest.isspace():
        yield number + 1, rest


def decode_line(line: bytes, *, key: str, number: int) -> dict[str, Any]:
    """One JSON Lines record; DatasetFormatError naming the key and line when it is not a JSON object."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        # orjson refuses what the standard library accepts (NaN, integers past 64 bits): only then the slow path.
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DatasetFormatError(key, number, f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise DatasetFormatError(key, number, f"expected a JSON object, got {type(record).__name__}")
    return record


def iter_slots(stream: IO[bytes], *, key: str, fmt: RecordFormat) -> Iterator[tuple[int, bytes | object]]:
    """Every record position of `stream` in order, undecoded where that is cheaper: (number, payload).

    JSON Lines give the raw line (bytes, decode with `decode_line`); a JSON document gives
    each array item already parsed (a top-level object is one item), to be checked with
    `check_item`. Readers that share an object by record position count these slots, so a
    malformed record still takes its place and every reader agrees on the numbering.
    """
    if fmt is RecordFormat.JSON:
        yield from _json_items(stream, key=key)
        return
    if fmt is RecordFormat.JSONL_GZ:
        with gzip.GzipFile(fileobj=stream, mode="rb") as unzipped:
            yield from jsonl_lines(cast(IO[bytes], unzipped))
        return
    yield from jsonl_lines(stream)


def check_item(value: object, *, key: str, number: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DatasetFormatError(key, number, f"expected a JSON object, got {type(value).__name__}", unit="item")
    return value


def _json_document(stream: IO[bytes], *, key: str, on_skip: OnSkip | None) -> Iterator[dict[str, Any]]:
    """A top-level array streamed item by item; a top-level object is one record."""
    for number, value in _json_items(stream, key=key, on_skip=on_skip):
        try:
            yield check_item(value, key=key, number=number)
        except DatasetFormatError as exc:
            _bad(key, number, exc.reason, on_skip, unit="item")


def _json_items(stream: IO[bytes], *, key: str, on_skip: OnSkip | None = None) -> Iterator[tuple[int, object]]:
    import ijson  # type: ignore[import-untyped]  # only JSON documents need it; JSONL stays import-light

    head = _peek_first_byte(stream)
    reader = _Prefixed(head, stream)
    if head == b"{":
        try:
            record = json.load(reader)
        except ValueError as exc:
            _bad(key, 1, f"not valid JSON ({exc})", on_skip)
            return
        yield 1, record
        return
    if head != b"[":
        _bad(key, 1, "expected a JSON array of objects or one JSON object", on_skip)
        return
    item = 0
    try:
        for value in ijson.items(reader, "item", use_float=True):
            item += 1
            yield item, value
    except ijson.JSONError as exc:
        # After a syntax error the rest of the document cannot be trusted: stop here, whatever on_error says.
        # (ijson's C backend also stops here on an integer beyond 64 bits.)
        raise DatasetFormatError(key, item + 1, f"not valid JSON ({exc})", unit="item") from exc


def _peek_first_byte(stream: IO[bytes]) -> bytes:
    while True:
        b = stream.read(1)
        if not b or not b.isspace():
            return b


class _Prefixed(io.RawIOBase):
    """A stream with a byte already read from it put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        head, self._head = self._head, b""
        if n is None or n < 0:
            return head + self._rest.read()
        return head + self._rest.read(n - len(head)) if n > len(head) else head

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _bad(key: str, line: int, reason: str, on_skip: OnSkip | None, *, unit: str = "line") -> None:
    if on_skip is None:
        raise DatasetFormatError(key, line, reason, unit=unit)
    on_skip(Skipped(key, line, reason))
