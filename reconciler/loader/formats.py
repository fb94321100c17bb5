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
import hashlib
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, TypeVar, cast

import orjson

CHUNK = 1024 * 1024
T = TypeVar("T")


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
    lines = gzip_lines(stream, key=key) if fmt is RecordFormat.JSONL_GZ else marked_lines(stream)
    yield from iter_jsonl(lines, key=key, on_skip=on_skip)


def iter_jsonl(
    lines: Iterator[tuple[int, Line]], *, key: str, on_skip: OnSkip | None = None
) -> Iterator[dict[str, Any]]:
    """JSON Lines (as marked_lines gives them): one object per line; blank lines are not records."""
    for number, line in lines:
        try:
            record = decode_marked(line, key=key, number=number)
        except DatasetFormatError as exc:
            _bad(key, number, exc.reason, on_skip)
            continue
        yield record


def jsonl_lines(stream: IO[bytes], chunk: int = CHUNK) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for every non-blank line, read `chunk` bytes at a time (see LineSplitter)."""
    return LineSplitter(chunk).lines(stream)


def marked_lines(stream: IO[bytes], chunk: int = CHUNK) -> Iterator[tuple[int, Line]]:
    """jsonl_lines with each line that holds a long digit run marked Exact, for decode_marked."""
    return LineSplitter(chunk).marked_lines(stream)


def whole_lines(data: bytes, head: T, first: int = 1) -> list[tuple[T, int, Line]]:
    """marked_lines of bytes already in hand (a whole small object, a span), each led by `head`, as one list: the
    same numbers (counted from `first`), lines and marks from one split and one scan for long digit runs, with no
    generator step a line (passing each line through two more generators cost a warm pass over 1 MiB shards about
    a tenth of its time)."""
    lines = data.split(b"\n")
    # A first byte past " " is no whitespace: the call to isspace() only for lines that may be blank.
    if not holds_long_run(data):
        return [
            (head, n, line) for n, line in enumerate(lines, first) if line and (line[0] > 0x20 or not line.isspace())
        ]
    return [
        (head, n, Exact(line) if _LONG_RUN in line.translate(_DIGITS) else line)
        for n, line in enumerate(lines, first)
        if line and (line[0] > 0x20 or not line.isspace())
    ]


class LineSplitter:
    """Lines out of a stream read `chunk` bytes at a time.

    Lines are split here rather than by a buffered reader's iteration: one split of a
    1 MiB chunk is a fraction of the cost of a readline per record, and a reader that
    does not own a line can pass it over without parsing it. A line longer than a chunk
    is collected piece by piece and joined once: gluing each new chunk to the line so far
    copied the line once per chunk, quadratic in its length (a 128 MiB line took seconds).
    `copied` counts the bytes copied into such lines, so a test can hold the work linear.

    `marked_lines` also decides, for decode_marked, which lines orjson may not read (a long digit run, see
    _LONG_RUN): a chunk at a time (holds_long_run), and line by line only in a chunk that holds one, or for a
    line joined from pieces of several chunks (a run may straddle two).
    `guarded` counts the lines checked one by one.
    """

    def __init__(self, chunk: int = CHUNK) -> None:
        self.chunk = chunk
        self.copied = 0
        self.guarded = 0

    def lines(self, stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
        return cast(Iterator[tuple[int, bytes]], self._split(stream, marked=False))

    def marked_lines(self, stream: IO[bytes]) -> Iterator[tuple[int, Line]]:
        return self._split(stream, marked=True)

    def _mark(self, line: bytes) -> Line:
        self.guarded += 1
        return Exact(line) if _LONG_RUN in line.translate(_DIGITS) else line

    def _split(self, stream: IO[bytes], *, marked: bool) -> Iterator[tuple[int, Line]]:
        number = 0
        pending: list[bytes] = []  # the pieces of a line begun in earlier chunks
        while data := stream.read(self.chunk):
            if pending:
                cut = data.find(b"\n")
                if cut < 0:
                    pending.append(data)
                    continue
                pending.append(data[:cut])
                line = b"".join(pending)
                self.copied += len(line)
                pending = []
                number += 1
                if line and not line.isspace():
                    yield number, self._mark(line) if marked else line
                data = data[cut + 1 :]
            lines = data.split(b"\n")
            tail = lines.pop()
            suspect = marked and holds_long_run(data)
            for line in lines:
                number += 1
                # A first byte past " " is no whitespace: the call to isspace() only for lines that may be blank.
                if line and (line[0] > 0x20 or not line.isspace()):
                    yield number, self._mark(line) if suspect else line
            if tail:
                pending.append(tail)
        if pending:
            line = b"".join(pending)
            self.copied += len(line)
            if not line.isspace():
                yield number + 1, self._mark(line) if marked else line


# Digits to "0", everything else to " ": a run of 19 zeros afterwards is a run of 19 digits in the line.
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
# orjson reads an integer beyond int64/uint64 as a rounded float. Such an integer has at least 19 digits in
# a row; a line holding such a run (also inside a string or a long fraction) is read by the standard library,
# whose integers are exact. One translate and one substring search: about a third of the parse's cost.
_LONG_RUN = b"0" * 19
# Any 19 bytes in a row hold at least 3 of the bytes at every 6th position, consecutive among them: a run of
# 19 digits leaves 3 digits in a row in the bytes sampled at that stride. The sample is a sixth of the bytes.
_STRIDE = 6
_SAMPLED_RUN = b"0" * (len(_LONG_RUN) // _STRIDE)


def holds_long_run(data: bytes) -> bool:
    """Whether `data` holds 19 digits in a row. A sample of a sixth of the bytes clears most text (chat records:
    all); only bytes it cannot clear (digits every 6th byte, three times in a row) are translated whole."""
    return _SAMPLED_RUN in data[::_STRIDE].translate(_DIGITS) and _LONG_RUN in data.translate(_DIGITS)


class Exact:
    """A line orjson must not read (it holds a long digit run): decoded by the standard library."""

    __slots__ = ("line",)

    def __init__(self, line: bytes) -> None:
        self.line = line


Line = bytes | Exact  # what marked_lines gives: a plain line is clear of long digit runs


def decode_line(line: bytes, *, key: str, number: int) -> dict[str, Any]:
    """One JSON Lines record; DatasetFormatError naming the key and line when it is not a JSON object."""
    return decode_marked(Exact(line) if _LONG_RUN in line.translate(_DIGITS) else line, key=key, number=number)


def decode_marked(line: Line, *, key: str, number: int) -> dict[str, Any]:
    """decode_line of a line marked_lines marked: a plain one needs no scan for long digit runs here."""
    if isinstance(line, Exact):
        record = _decode_exactly(line.line, key=key, number=number)
    else:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            # orjson refuses what the standard library accepts (NaN, lone surrogates): only then the slow path.
            record = _decode_exactly(line, key=key, number=number)
    if not isinstance(record, dict):
        raise DatasetFormatError(key, number, f"expected a JSON object, got {type(record).__name__}")
    return record


def _decode_exactly(line: bytes, *, key: str, number: int) -> Any:
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise DatasetFormatError(key, number, f"not valid JSON ({exc})") from None
    try:
        # A lone surrogate ("\ud800") is valid JSON but no character: no UTF-8 writer (the final dataset's
        # compile, `pixel cat`, orjson) can pass it on. Refused here, where the object and line are known.
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode()
        reason = f"a string holds a lone surrogate ({bad}), which is not Unicode"
        raise DatasetFormatError(key, number, reason) from None
    return record


def iter_slots(stream: IO[bytes], *, key: str, fmt: RecordFormat) -> Iterator[tuple[int, Line | object]]:
    """Every record position of `stream` in order, undecoded where that is cheaper: (number, payload).

    JSON Lines give the raw line as marked_lines marks it (decode with `decode_marked`); a JSON document gives
    each array item already parsed (a top-level object is one item), to be checked with
    `check_item`. Readers that share an object by record position count these slots, so a
    malformed record still takes its place and every reader agrees on the numbering.
    """
    # The format's own generator, not one around it: a step less for every record.
    if fmt is RecordFormat.JSON:
        return _json_items(stream, key=key)
    if fmt is RecordFormat.JSONL_GZ:
        return gzip_lines(stream, key=key)
    return marked_lines(stream)


def gzip_lines(stream: IO[bytes], *, key: str) -> Iterator[tuple[int, Line]]:
    """The lines of gzip-compressed JSON Lines, marked (marked_lines); a stream that is not gzip, or is cut short,
    is one DatasetFormatError naming the object and the line it broke at. Whatever on_error says: nothing after
    the break can be read, and a half-read object is not a malformed record that could be passed over."""
    number = 0
    try:
        with gzip.GzipFile(fileobj=stream, mode="rb") as unzipped:
            for number, line in marked_lines(cast(IO[bytes], unzipped)):
                yield number, line
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        raise DatasetFormatError(key, number + 1, f"not a readable gzip stream ({reason})") from None


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
    reader = _SurrogateGuard(cast(IO[bytes], Prefixed(head, stream)), key)
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


_BACKSLASHES = re.compile(rb"\\+")
_SURROGATE = re.compile(rb"[dD][89a-fA-F][0-9a-fA-F]{2}")  # the 4 hex digits of a \\u escape of a surrogate
_LOW = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_ESCAPE_AHEAD = 11  # "u" + 4 hex digits + the low half of a pair (6): what deciding one escape needs to see


class _SurrogateGuard(io.RawIOBase):
    """A JSON document's bytes, refused at the first lone surrogate escape ("\\ud800" not in a pair).

    ijson's C backend reads one as "?", a silent change of the value (or fails with a bare
    UnicodeDecodeError); the standard library keeps it as a str no UTF-8 writer can write. Only backslash
    runs are looked at: an odd run is an escape. Bytes are handed on only once decided, so the parser
    never sees a lone surrogate: the few bytes of an escape cut by the end of a read wait for the next.
    """

    def __init__(self, stream: IO[bytes], key: str) -> None:
        self._stream = stream
        self._key = key
        self._held = b""  # read from the stream, not handed on yet
        self._ok = 0  # how many of _held are decided
        self._offset = 0  # where the undecided part of _held starts in the document
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            if not self._eof:
                self._decide(self._stream.read(), final=True)
            out, self._held, self._ok = self._held, b"", 0
            return out
        while not self._ok and not self._eof:
            data = self._stream.read(max(n, 1))
            self._decide(data, final=not data)
        take = min(n, self._ok)
        out, self._held, self._ok = self._held[:take], self._held[take:], self._ok - take
        return out

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _decide(self, data: bytes, *, final: bool) -> None:
        self._eof = final
        undecided = self._held[self._ok :] + data
        decided = len(undecided)
        if b"\\" in undecided:
            paired = -1  # where the low half of the last pair starts: part of a character, not lone
            for run in _BACKSLASHES.finditer(undecided):
                start, end = run.span()
                if start == paired:
                    continue
                if not final and end + _ESCAPE_AHEAD > len(undecided):
                    decided = start
                    break
                if (end - start) % 2 == 0:
                    continue
                if undecided[end : end + 1] != b"u" or not _SURROGATE.match(undecided, end + 1):
                    continue
                if undecided[end + 2 : end + 3] in b"89abAB" and _LOW.match(undecided, end + 5):
                    paired = end + 5
                    continue
                escape = undecided[end - 1 : end + 5].decode("ascii", "replace")
                raise DatasetFormatError(
                    self._key, self._offset + end - 1,
                    f"a string holds a lone surrogate ({escape}), which is not Unicode", unit="byte",
                )
        self._held = self._held[: self._ok] + undecided
        self._ok += decided
        self._offset += decided


def _peek_first_byte(stream: IO[bytes]) -> bytes:
    while True:
        b = stream.read(1)
        if not b or not b.isspace():
            return b


class Prefixed(io.RawIOBase):
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


class HashingReader:
    """A stream read through: md5 and size of everything read. What a parser reads of an object is checked
    against its md5 (a record index built, a final-dataset source compiled); `drain` reads what it left."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.digest = hashlib.md5()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read what the parser left (trailing whitespace): the md5 is of the whole object."""
        while self.read(CHUNK):
            pass
