"""An object's record index: how many records it holds and, for a big JSON Lines object, where its spans begin.

Equal records per rank needs every object's record count before the first
record is read, and reading only a rank's share of a big object needs record
boundaries. Both come from one pass over the object's bytes, done once per
machine and kept by md5 under the cache directory (`indexes/ab/abcdef....jsonl.json`):
the bytes of an md5 never change, so neither does their index. The final
dataset's manifest already counts each shard's records; that count is used and
no pass is needed.

A JSON Lines object larger than SPAN_BYTES is cut into spans at line starts,
on a grid: FIRST_SPAN_BYTES, then every multiple of SPAN_BYTES (SeaweedFS
stores an object in chunks of 4 MiB and pauses at each chunk's end). A span
closes at the last line start at or before the first grid point its first line
reaches, or after the line that brings it to SPAN_RECORDS records, or at the
object's end; a line longer than SPAN_BYTES is a span of its own. So the first
span is small (its records are verified and yielded after 1 MiB, not after 4 MiB
and a line), and no span crosses a grid point unless its first line does. Each span carries its byte range, the
number of lines before it (so an error still names the object's line), its
record count, the md5 of its bytes (the name it is cached under) and their
SHA-256 (what a span read is checked against before any of its records is
served: OpenSSL hashes SHA-256 with the CPU's SHA extensions at 2.5x md5's
speed). Other objects (smaller, gzip, JSON documents) are one unit, read whole
and verified by the object's md5.

The constants are part of the epoch's layout, and so of a saved loader state's
meaning: changing them changes STATE_VERSION in sharding.py, and the index's
INDEX_VERSION (manifests/record_index.py), which names the published index's
key: an index of another version is never read (its spans would deal other
units than this loader's, and ranks must agree on them), it is built again.
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
from reconciler.manifests.record_index import INDEX_VERSION

SPAN_BYTES = 4 * 1024 * 1024
FIRST_SPAN_BYTES = 1024 * 1024  # the first grid point: what a cold reader downloads before its first record
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
    sha256: str


def span_problem(span: Span, data: bytes) -> str | None:
    """None when `data` are the span's bytes (by size and SHA-256), else what was read, for the error."""
    got = hashlib.sha256(data).hexdigest()
    if got == span.sha256 and len(data) == span.stop - span.start:
        return None
    return (f"read {len(data)} bytes with SHA-256 {got}, expected {span.stop - span.start} bytes with SHA-256 "
            f"{span.sha256} (from the object's index)")


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
            "spans": [[s.start, s.stop, s.lines, s.records, s.md5, s.sha256] for s in self.spans],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordIndex:
        if data.get("version") != INDEX_VERSION:
            raise ValueError(f"index version {data.get('version')!r}, this loader reads version {INDEX_VERSION}")
        spans = tuple(Span(int(a), int(b), int(c), int(d), str(e), str(f)) for a, b, c, d, e, f in data["spans"])
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


def _grid_at_or_after(position: int) -> int:
    """The first grid point at or after `position` (> 0): FIRST_SPAN_BYTES, or a multiple of SPAN_BYTES."""
    by_span = -(-position // SPAN_BYTES) * SPAN_BYTES
    return FIRST_SPAN_BYTES if position <= FIRST_SPAN_BYTES < by_span else by_span


class _SpanHash:
    def __init__(self) -> None:
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256()

    def update(self, data: bytes | memoryview) -> None:
        self.md5.update(data)
        self.sha256.update(data)


def _jsonl(stream: IO[bytes], split: bool) -> RecordIndex:
    # Lines are split, measured and classified a chunk at a time by C-level maps, and span cuts found by
    # bisection: a Python step per line counted at a third of md5's speed.
    whole = hashlib.md5()
    spans: list[Span] = []
    span_hash = _SpanHash()
    span_start = span_lines = span_records = 0  # span_records: the span's records before this buffer
    target: int | None = None  # the grid point the open span's first line reaches (None: not seen yet)
    lines_seen = records = 0
    done = 0  # bytes of complete lines before `buffer`

    def take(buffer: bytes, lines: list[bytes]) -> None:
        """Count and cut the whole lines of `buffer` (which starts at `done`)."""
        nonlocal span_hash, span_start, span_lines, span_records, target, lines_seen, records, done
        ends = list(itertools.accumulate(map(_ONE.__add__, map(len, lines))))  # each line's end in `buffer`
        if len(buffer) < ends[-1]:
            ends[-1] = len(buffer)  # the object's last line, with no newline after it
        # A record is a line neither empty nor whitespace; running count of them, line by line.
        blank = map(operator.not_, map(bytes.isspace, lines))
        counted = list(itertools.accumulate(map(operator.and_, map(bool, lines), blank)))
        hashed = base = 0  # bytes of `buffer` in span_hash; records of `buffer` before the current span
        first = 0  # the current span's first line in `buffer` (0 also when it began in an earlier buffer)
        while split:
            if target is None:
                if first >= len(lines):
                    break
                reached = done + ends[first]
                # A line longer than a span is a span of its own; any other span reaches for the grid.
                target = reached if reached - span_start > SPAN_BYTES else _grid_at_or_after(reached)
            # The last line start at or before the target is known once a line ends past it; -1: `buffer`'s start.
            by_size = bisect.bisect_right(ends, target - done) - 1
            if by_size + 1 >= len(lines):
                by_size = len(lines)
            by_count = bisect.bisect_left(counted, base + SPAN_RECORDS - span_records, lo=first)
            cut = min(by_size, by_count)
            if cut >= len(lines):
                break
            at = ends[cut] if cut >= 0 else 0
            span_hash.update(buffer[hashed:at])
            hashed = at
            counted_at = counted[cut] if cut >= 0 else 0
            spans.append(Span(span_start, done + at, span_lines, span_records + counted_at - base,
                              span_hash.md5.hexdigest(), span_hash.sha256.hexdigest()))
            span_hash = _SpanHash()
            span_start, span_lines, span_records, base = done + at, lines_seen + cut + 1, 0, counted_at
            first, target = cut + 1, None
        if split:  # unsplit, the object's md5 is all there is to check
            span_hash.update(buffer[hashed : ends[-1]])
        span_records += counted[-1] - base
        lines_seen += len(lines)
        records += counted[-1]
        done += ends[-1]

    rest = b""
    while data := stream.read(CHUNK):
        whole.update(data)
        buffer = rest + data if rest else data
        lines = buffer.split(b"\n")
        rest = lines.pop()
        if lines:
            take(buffer, lines)
    if rest:
        take(rest, [rest])
    if split and done > span_start:
        spans.append(Span(span_start, done, span_lines, span_records, span_hash.md5.hexdigest(),
                          span_hash.sha256.hexdigest()))
    return RecordIndex(whole.hexdigest(), done, records, tuple(spans))


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

