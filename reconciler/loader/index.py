"""An object's record index: how many records it holds and, for a big JSON Lines object, where its spans begin.

Equal records per rank needs every object's record count before the first
record is read, and reading only a rank's share of a big object needs record
boundaries. Both come from one pass over the object's bytes, done once per
machine and kept by md5 under the cache directory (`indexes/ab/abcdef....jsonl.json`):
the bytes of an md5 never change, so neither does their index. The final
dataset's manifest already counts each shard's records; that count is used and
no pass is needed.

A JSON Lines object larger than SPAN_BYTES is cut into spans at line starts:
a span closes after the line that brings it to SPAN_BYTES or SPAN_RECORDS
records. Each span carries its byte range, the number of lines before it (so an
error still names the object's line), its record count and the md5 of its
bytes: a span read with a ranged GET is checked against that md5 before any of
its records is served. Other objects (smaller, gzip, JSON documents) are one
unit, read whole and verified by the object's md5.

The constants are part of the epoch's layout, and so of a saved loader state's
meaning: changing them changes STATE_VERSION in sharding.py.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import itertools
import json
import operator
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from filelock import FileLock, Timeout

from reconciler.loader.formats import CHUNK, HashingReader, RecordFormat, iter_slots

INDEX_VERSION = 1
SPAN_BYTES = 4 * 1024 * 1024
SPAN_RECORDS = 8192
_ONE = 1  # _ONE.__add__: a line's length plus its newline, mapped without a Python frame per line
BUILD_WAIT_S = 600.0  # as long as the cache waits for another process's eviction


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes [start, stop) of an object: whole lines, `records` of them non-blank, after `lines` lines."""

    start: int
    stop: int
    lines: int
    records: int
    md5: str


@dataclass(frozen=True, slots=True)
class RecordIndex:
    md5: str
    size: int
    records: int
    spans: tuple[Span, ...] = ()  # empty: the object is one unit, read whole

    def to_json(self) -> dict[str, Any]:
        return {
            "version": INDEX_VERSION,
            "md5": self.md5,
            "size": self.size,
            "records": self.records,
            "spans": [[s.start, s.stop, s.lines, s.records, s.md5] for s in self.spans],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordIndex:
        spans = tuple(Span(int(a), int(b), int(c), int(d), str(e)) for a, b, c, d, e in data["spans"])
        index = cls(str(data["md5"]), int(data["size"]), int(data["records"]), spans)
        if spans and (
            spans[0].start != 0
            or spans[-1].stop != index.size
            or any(a.stop != b.start for a, b in itertools.pairwise(spans))
            or sum(s.records for s in spans) != index.records
        ):
            raise ValueError(f"index of {index.md5}: its spans do not tile the object")
        return index


def splits(fmt: RecordFormat, size: int | None) -> bool:
    """Whether an object of this format and size is cut into spans (read by byte range)."""
    return fmt is RecordFormat.JSONL and size is not None and size > SPAN_BYTES


def build(stream: IO[bytes], *, key: str, fmt: RecordFormat, split: bool) -> RecordIndex:
    """The index of the bytes `stream` holds, with their md5 and size (for the caller to check)."""
    if fmt is not RecordFormat.JSONL:
        hashed = HashingReader(stream)
        records = sum(1 for _ in iter_slots(cast(IO[bytes], hashed), key=key, fmt=fmt))
        hashed.drain()
        return RecordIndex(hashed.digest.hexdigest(), hashed.size, records)
    return _jsonl(stream, split)


def _jsonl(stream: IO[bytes], split: bool) -> RecordIndex:
    # Lines are split, measured and classified a chunk at a time by C-level maps, and span cuts found by
    # bisection: a Python step per line counted at a third of md5's speed.
    whole = hashlib.md5()
    spans: list[Span] = []
    span_hash = hashlib.md5()
    span_start = span_lines = span_records = 0  # span_records: the span's records before this buffer
    lines_seen = records = 0
    done = 0  # bytes of complete lines before `buffer`
    rest = b""
    while data := stream.read(CHUNK):
        whole.update(data)
        buffer = rest + data if rest else data
        lines = buffer.split(b"\n")
        rest = lines.pop()
        if not lines:
            continue
        ends = list(itertools.accumulate(map(_ONE.__add__, map(len, lines))))  # each line's end in `buffer`
        # A record is a line neither empty nor whitespace; running count of them, line by line.
        blank = map(operator.not_, map(bytes.isspace, lines))
        counted = list(itertools.accumulate(map(operator.and_, map(bool, lines), blank)))
        hashed = base = 0  # bytes of `buffer` in span_hash; records of `buffer` before the current span
        while split:
            by_size = bisect.bisect_left(ends, span_start - done + SPAN_BYTES)
            by_count = bisect.bisect_left(counted, base + SPAN_RECORDS - span_records)
            cut = min(by_size, by_count)
            if cut >= len(lines):
                break
            span_hash.update(buffer[hashed : ends[cut]])
            hashed = ends[cut]
            spans.append(
                Span(span_start, done + hashed, span_lines, span_records + counted[cut] - base, span_hash.hexdigest())
            )
            span_hash = hashlib.md5()
            span_start, span_lines, span_records, base = done + hashed, lines_seen + cut + 1, 0, counted[cut]
        if split:  # unsplit, the object's md5 is all there is to check
            span_hash.update(buffer[hashed : ends[-1]])
        span_records += counted[-1] - base
        lines_seen += len(lines)
        records += counted[-1]
        done += ends[-1]
    size = done + len(rest)
    if rest:
        if split:
            span_hash.update(rest)
        if not rest.isspace():
            records += 1
            span_records += 1
    if split and size > span_start:
        spans.append(Span(span_start, size, span_lines, span_records, span_hash.hexdigest()))
    return RecordIndex(whole.hexdigest(), size, records, tuple(spans))


class IndexStore:
    """Indexes kept by md5 under `root`, written whole or not at all (a reader never sees half of one)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, md5: str, fmt: RecordFormat) -> Path:
        # By format too: the same bytes declared as another format are other records.
        return self.root / md5[:2] / f"{md5}.{fmt.value}.json"

    @contextlib.contextmanager
    def building(self, md5: str, fmt: RecordFormat) -> Iterator[None]:
        """Held while one process builds this index; given up waiting after BUILD_WAIT_S (then built twice)."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(locks / f"{md5}.{fmt.value}.lock"), thread_local=False, is_singleton=False)
        try:
            lock.acquire(timeout=BUILD_WAIT_S)
        except Timeout:
            yield
            return
        try:
            yield
        finally:
            lock.release()

    def get(self, md5: str, fmt: RecordFormat) -> RecordIndex | None:
        try:
            data = json.loads(self.path(md5, fmt).read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # unreadable: built again, and replaced
        if data.get("version") != INDEX_VERSION or data.get("md5") != md5:
            return None
        try:
            return RecordIndex.from_json(data)
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, index: RecordIndex, fmt: RecordFormat) -> None:
        final = self.path(index.md5, fmt)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{index.md5}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(index.to_json(), out, separators=(",", ":"))
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

