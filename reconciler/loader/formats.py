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
    # S3 bodies hand out whatever the socket has: line iteration wants a buffer in front of them.
    buffered: IO[bytes] = stream if isinstance(stream, io.BufferedIOBase) else io.BufferedReader(_Raw(stream), CHUNK)
    for number, line in enumerate(buffered, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            _bad(key, number, f"not valid JSON ({exc})", on_skip)
            continue
        if not isinstance(record, dict):
            _bad(key, number, f"expected a JSON object, got {type(record).__name__}", on_skip)
            continue
        yield record


def _json_document(stream: IO[bytes], *, key: str, on_skip: OnSkip | None) -> Iterator[dict[str, Any]]:
    """A top-level array streamed item by item; a top-level object is one record."""
    import ijson  # type: ignore[import-untyped]  # only JSON documents need it; JSONL stays import-light

    head = _peek_first_byte(stream)
    reader = _Prefixed(head, stream)
    if head == b"{":
        try:
            record = json.load(reader)
        except ValueError as exc:
            _bad(key, 1, f"not valid JSON ({exc})", on_skip)
            return
        yield record
        return
    if head != b"[":
        _bad(key, 1, "expected a JSON array of objects or one JSON object", on_skip)
        return
    item = 0
    try:
        for value in ijson.items(reader, "item", use_float=True):
            item += 1
            if not isinstance(value, dict):
                _bad(key, item, f"expected a JSON object, got {type(value).__name__}", on_skip, unit="item")
                continue
            yield value
    except ijson.JSONError as exc:
        # After a syntax error the rest of the document cannot be trusted: stop here, whatever on_error says.
        # (ijson's C backend also stops here on an integer beyond 64 bits.)
        raise DatasetFormatError(key, item + 1, f"not valid JSON ({exc})", unit="item") from exc


def _peek_first_byte(stream: IO[bytes]) -> bytes:
    while True:
        b = stream.read(1)
        if not b or not b.isspace():
            return b


class _Raw(io.RawIOBase):
    """Any readable binary stream as a raw stream, so io.BufferedReader can sit in front of it."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


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
