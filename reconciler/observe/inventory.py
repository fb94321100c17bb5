"""Observe a huge bucket from its S3 Inventory report instead of listing it.

S3 Inventory delivers, daily or weekly, into a destination bucket:

    {prefix}/{source-bucket}/{config-id}/{YYYY-MM-DDTHH-MMZ}/manifest.json
    {prefix}/{source-bucket}/{config-id}/data/{uuid}.csv.gz

`manifest.json` names the source bucket, the `fileFormat` (CSV here; ORC and
Parquet are refused with a clear message), the `fileSchema` (the CSV's column
names, in order; the CSV files have no header row), the `creationTimestamp`
(milliseconds since the epoch) and the data `files`, each with its `key`,
`size` and `MD5checksum`. Keys in the CSV are URL-encoded.

A report is a day old at best: every action planned from it still carries the
ETag it saw as its precondition, so an object changed since the report makes
its action fail with 412 instead of being overwritten. Prefixes that change
often can be listed live instead (`--relist-prefix`).

An object's absence from a report carries no precondition: a local file that
a pull with `prune_local` would delete because the report lacks its object may
be the copy of an object written after the report (pixel's own pull of it, an
hour ago). So a report never deletes a local file on its own: the observer
asks the bucket (a HEAD per key, `InventoryListing.present_now`) about every
local file whose object the report lacks, and only an object still missing
there makes a delete. A manifest whose `files` list is empty is refused: an
empty list is a report that says nothing, not a bucket that holds nothing.

Two reads give the same entries: `read_report` holds them all in memory, sorted;
`read_streamed` (`--scale stream`) keeps verified copies of the data files on
disk and merges them lazily per listing, one row per file in memory, relying on
(and checking) each file's rows being sorted by key, as AWS writes them.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import hashlib
import heapq
import io
import itertools
import json
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote_plus

from reconciler.model import Entry
from reconciler.stores.base import OpenSource, Store, StoreError

REQUIRED_COLUMNS = ("Key", "Size", "ETag")
_MD5_HEX = frozenset("0123456789abcdef")
_CHUNK = 1 << 20  # bytes of a data file in memory at a time while it is fetched and its md5 checked


class InventoryError(Exception):
    """The report is missing, unreadable or not in the documented format."""


@dataclass(frozen=True, slots=True)
class ReportHead:
    """What manifest.json says of a report, whichever way its data files are then read."""

    source_bucket: str
    manifest: str  # "bucket/key" of the manifest.json read
    created: datetime

    def age(self, now: datetime) -> str:
        seconds = max(0, int((now - self.created).total_seconds()))
        days, rest = divmod(seconds, 86400)
        hours, rest = divmod(rest, 3600)
        return f"{days}d {hours}h {rest // 60}m" if days else f"{hours}h {rest // 60}m"


@dataclass(frozen=True, slots=True)
class InventoryReport(ReportHead):
    """A report read whole into memory: every entry, sorted by key."""

    entries: tuple[Entry, ...]

    @property
    def count(self) -> int:
        return len(self.entries)

    def listed(self, prefix: str) -> Iterator[Entry]:
        """The entries under `prefix`, in key order."""
        start = bisect.bisect_left(self.entries, prefix, key=_key)
        for entry in itertools.islice(self.entries, start, None):
            if not entry.key.startswith(prefix):
                return
            yield entry


@dataclass(frozen=True, slots=True)
class StreamedReport(ReportHead):
    """A report read as a stream (`--scale stream`): its data files, verified, on local disk, merged per listing.

    Each file holds its rows sorted by key, so a listing is a `heapq.merge` of one lazy reader per file:
    one row per data file in memory, whatever the report's size. Ties keep the files' order, as the stable
    sort of the in-memory read does, so both give the same entries in the same order.
    """

    columns: tuple[str, ...]
    files: tuple[tuple[Path, str], ...]  # (the local copy, the data file's name for messages)
    count: int

    def listed(self, prefix: str) -> Iterator[Entry]:
        """The entries under `prefix`, in key order: each file is read from its start, up to the prefix's end."""
        readers = [_file_entries(path, self.columns, where) for path, where in self.files]
        try:
            for entry in heapq.merge(*readers, key=_order):
                if entry.key < prefix:
                    continue
                if not entry.key.startswith(prefix):
                    return
                yield entry
        finally:
            for reader in readers:
                reader.close()  # closes its gzip file now, not whenever the generator is collected


Report = InventoryReport | StreamedReport


@dataclass(frozen=True, slots=True)
class _Manifest:
    head: ReportHead
    columns: tuple[str, ...]
    files: tuple[tuple[str, str], ...]  # (data file key, its MD5checksum in lower case, "" if none)


def _key(entry: Entry) -> str:
    return entry.key


def _order(entry: Entry) -> bytes:
    # The spill's order (keys as UTF-8 BLOBs) and S3's listing order: byte order of the UTF-8 key.
    return entry.key.encode("utf-8", "surrogatepass")


def _md5_of_etag(etag: str, encryption: str) -> str | None:
    etag = etag.strip('"').lower()
    # SSE-KMS ETags look like md5s but are not; a multipart ETag ends in -N.
    if "KMS" in encryption.upper() or len(etag) != 32 or not set(etag) <= _MD5_HEX:
        return None
    return etag


def _mtime_ns(value: str) -> int | None:
    if not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return None


def newest_manifest(store: Store, prefix: str, source_bucket: str) -> str:
    """Key of the newest manifest.json for `source_bucket` under `prefix` (its folder names sort by time)."""
    base = f"{prefix.strip('/')}/{source_bucket}/" if prefix.strip("/") else f"{source_bucket}/"
    found = [e.key for e in store.list(base) if e.key.endswith("/manifest.json") and "/hive/" not in e.key]
    if not found:
        raise InventoryError(f"no S3 Inventory report (manifest.json) under {store.name}:{base}")
    return max(found, key=lambda key: (key.rsplit("/", 2)[-2], key))


def _field(manifest: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in manifest:
        raise InventoryError(f"{where}: manifest.json has no {name!r} field")
    return manifest[name]


def _rows(stream: BinaryIO, where: str) -> Iterator[list[str]]:
    """The CSV rows of a gzip-compressed data file, decompressed and parsed as they are read."""
    try:
        with io.TextIOWrapper(gzip.GzipFile(fileobj=stream, mode="rb"), encoding="utf-8", newline="") as text:
            yield from csv.reader(text)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        raise InventoryError(f"{where}: not a gzip-compressed UTF-8 CSV file ({exc})") from exc


def _read_manifest(store: Store, manifest_key: str, expected_bucket: str) -> _Manifest:
    where = f"{store.name}:{manifest_key}"
    try:
        with store.open(manifest_key) as body:
            manifest = json.loads(body.read())
    except StoreError as exc:
        raise InventoryError(f"cannot read the S3 Inventory manifest {where}: {exc}") from exc
    except ValueError as exc:
        raise InventoryError(f"{where}: manifest.json is not JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise InventoryError(f"{where}: manifest.json is not a JSON object")
    source = str(_field(manifest, "sourceBucket", where))
    if source != expected_bucket:
        raise InventoryError(f"{where}: the report is for bucket {source!r}, not {expected_bucket!r}")
    file_format = str(_field(manifest, "fileFormat", where))
    if file_format.upper() != "CSV":
        raise InventoryError(
            f"{where}: fileFormat {file_format!r}; pixel reads CSV inventory reports (set the configuration's "
            "output format to CSV)"
        )
    columns = tuple(c.strip() for c in str(_field(manifest, "fileSchema", where)).split(","))
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InventoryError(f"{where}: fileSchema lacks the column(s) {', '.join(missing)}")
    try:
        created = datetime.fromtimestamp(int(_field(manifest, "creationTimestamp", where)) / 1000, tz=UTC)
    except (TypeError, ValueError) as exc:
        raise InventoryError(f"{where}: creationTimestamp is not milliseconds since the epoch") from exc
    files = _field(manifest, "files", where)
    if not isinstance(files, list) or not all(isinstance(f, dict) and "key" in f for f in files):
        raise InventoryError(f"{where}: 'files' is not a list of {{key, size, MD5checksum}}")
    if not files:
        # Read as "the bucket is empty", it would plan deleting every local file a pull prunes.
        raise InventoryError(
            f"{where}: the manifest lists no data files; an empty list is an incomplete report, not an empty "
            "bucket (observe this bucket by listing it: drop --observe inventory)"
        )
    named = tuple((str(f["key"]), str(f.get("MD5checksum", "")).lower()) for f in files)
    return _Manifest(ReportHead(source, where, created), columns, named)


def _fetch(store: Store, key: str, expected_md5: str, sink: BinaryIO) -> None:
    """Copy data file `key` into `sink` a chunk at a time; refused unless its md5 is the manifest's."""
    where = f"{store.name}:{key}"
    digest = hashlib.md5()
    try:
        with store.open(key) as body:
            while chunk := body.read(_CHUNK):
                digest.update(chunk)
                sink.write(chunk)
    except StoreError as exc:
        raise InventoryError(f"cannot read the S3 Inventory data file {where}: {exc}") from exc
    if expected_md5 and digest.hexdigest() != expected_md5:
        raise InventoryError(f"{where}: the data file's md5 is not the manifest's MD5checksum (corrupt or partial)")


def read_report(store: Store, manifest_key: str, *, expected_bucket: str) -> InventoryReport:
    """Parse manifest.json and every data file it names into memory; checks each file's MD5checksum."""
    manifest = _read_manifest(store, manifest_key, expected_bucket)
    entries: list[Entry] = []
    for key, md5 in manifest.files:
        raw = io.BytesIO()
        _fetch(store, key, md5, raw)
        raw.seek(0)
        entries += _parsed(_rows(raw, f"{store.name}:{key}"), manifest.columns, f"{store.name}:{key}")
    entries.sort(key=_key)
    head = manifest.head
    return InventoryReport(head.source_bucket, head.manifest, head.created, tuple(entries))


def read_streamed(store: Store, manifest_key: str, *, expected_bucket: str, directory: Path) -> StreamedReport:
    """The report for `--scale stream`: each data file copied into `directory` and checked, none held in memory.

    Every check `read_report` makes is made here, before anything is listed: each file's MD5checksum, its
    rows, and that its keys are in order (a merge of files that are not would silently list keys in the
    wrong place, or skip them: such a file is refused, naming it and its first key out of order).
    """
    manifest = _read_manifest(store, manifest_key, expected_bucket)
    files: list[tuple[Path, str]] = []
    count = 0
    for index, (key, md5) in enumerate(manifest.files):
        path, where = directory / f"{index:06d}.csv.gz", f"{store.name}:{key}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as sink:
                _fetch(store, key, md5, sink)
        except OSError as exc:  # a full disk, say: the report is not readable this way, and not half-read
            raise InventoryError(
                f"cannot keep a copy of the S3 Inventory data file {where} in {directory}: {exc}"
            ) from exc
        files.append((path, where))
        count += sum(1 for _ in _file_entries(path, manifest.columns, where))
    head = manifest.head
    return StreamedReport(head.source_bucket, head.manifest, head.created, manifest.columns, tuple(files), count)


def _file_entries(path: Path, columns: tuple[str, ...], where: str) -> Generator[Entry, None, None]:
    """One local data file's entries, read lazily, each checked to come after the one before it."""
    previous: bytes | None = None
    with path.open("rb") as raw:
        for entry in _parsed(_rows(raw, where), columns, where):
            order = _order(entry)
            if previous is not None and order < previous:
                raise InventoryError(
                    f"{where}: the data file is not sorted by key: {entry.key!r} comes after "
                    f"{previous.decode('utf-8', 'surrogatepass')!r} (--scale stream merges the report's files "
                    "in key order; plan without it to read the report in memory)"
                )
            previous = order
            yield entry


def _parsed(rows: Iterable[list[str]], columns: tuple[str, ...], where: str) -> Iterator[Entry]:
    """The entries a listing would show, of one data file's rows (both reads of a report parse here)."""
    at = {name: i for i, name in enumerate(columns)}
    key_i, size_i, etag_i = at["Key"], at["Size"], at["ETag"]
    optional = {name: at.get(name) for name in ("LastModifiedDate", "IsLatest", "IsDeleteMarker", "EncryptionStatus")}

    def cell(row: list[str], name: str) -> str:
        index = optional[name]
        return row[index] if index is not None and index < len(row) else ""

    for line, row in enumerate(rows, 1):
        # More cells than the schema names is as wrong as fewer: the schema no longer says which cell is
        # the Key, the Size or the ETag, and reading by position would take one column for another.
        if len(row) != len(columns):
            raise InventoryError(f"{where}: row {line} has {len(row)} columns, fileSchema names {len(columns)}")
        if cell(row, "IsLatest").lower() == "false" or cell(row, "IsDeleteMarker").lower() == "true":
            continue  # an older version or a delete marker: not what a listing shows
        name = unquote_plus(row[key_i])
        if not name or name.endswith("/"):
            continue
        try:
            size = int(row[size_i] or 0)
        except ValueError as exc:
            raise InventoryError(f"{where}: row {line}: Size {row[size_i]!r} is not a number") from exc
        etag = row[etag_i].strip('"')
        md5 = _md5_of_etag(etag, cell(row, "EncryptionStatus"))
        yield Entry(name, size, md5, _mtime_ns(cell(row, "LastModifiedDate")), etag)


@runtime_checkable
class ListsFromThePast(Protocol):
    """A store whose listing is older than the bucket (a report): what it does not list may exist by now."""

    def present_now(self, keys: Iterable[str]) -> Iterator[Entry]:
        """Of `keys`, which the listing does not show, those the bucket holds now."""
        ...


class InventoryListing:
    """A Store whose `list` answers from an inventory report; everything else goes to the live store.

    Keys under a `relist` prefix are listed live. An entry whose ETag is not an md5
    (multipart) is asked for its recorded md5 with a HEAD, as a listing would.
    """

    def __init__(self, live: Store, report: Report, relist: Iterable[str] = ()) -> None:
        self.name = live.name
        self.live = live
        self.report = report
        self.relist = tuple(sorted(set(relist)))

    def _relisted(self, key: str) -> bool:
        return any(key.startswith(p) for p in self.relist)

    def list(self, prefix: str) -> Iterator[Entry]:
        for entry in self.report.listed(prefix):
            if self._relisted(entry.key):
                continue
            if entry.md5 is None:
                entry = self._with_recorded_md5(entry)
            yield entry
        for live_prefix in self.relist:
            if live_prefix.startswith(prefix):
                yield from self.live.list(live_prefix)
            elif prefix.startswith(live_prefix):
                yield from self.live.list(prefix)
                return

    def present_now(self, keys: Iterable[str]) -> Iterator[Entry]:
        """Of `keys` (ones the report does not list), those the bucket holds now, as a HEAD of each finds them.

        The report is older than any of them may be: an absence from it is no reason to delete a local copy.
        Keys under a relisted prefix were listed live already and are not asked again.
        """
        asked = [key for key in keys if not self._relisted(key)]
        if not asked:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(asked)), thread_name_prefix="pixel-absent") as pool:
            for entry in pool.map(self.live.stat, asked):
                if entry is not None:
                    yield entry

    def _with_recorded_md5(self, entry: Entry) -> Entry:
        found = self.live.stat(entry.key)
        if found is None or found.etag != entry.etag:
            return entry  # changed since the report: left unknown, its action's precondition settles it
        return Entry(entry.key, entry.size, found.md5, entry.mtime_ns, entry.etag)

    def stat(self, key: str) -> Entry | None:
        return self.live.stat(key)

    def open(self, key: str, *, if_match: str | None = None) -> AbstractContextManager[BinaryIO]:
        return self.live.open(key, if_match=if_match)

    def write(
        self,
        key: str,
        source: OpenSource,
        *,
        size: int,
        md5: str | None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> Entry:
        return self.live.write(key, source, size=size, md5=md5, if_match=if_match, if_absent=if_absent)

    def copy(
        self,
        src_key: str,
        dst_key: str,
        *,
        md5: str | None,
        src_etag: str | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> Entry:
        return self.live.copy(src_key, dst_key, md5=md5, src_etag=src_etag, if_match=if_match, if_absent=if_absent)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        self.live.delete(key, if_match=if_match)


def inventory_views(
    stores: Mapping[str, Store],
    reports: Mapping[str, tuple[Store, str]],
    relist: Iterable[str],
    *,
    log: Callable[[str, Report], None],
    spool: Path | None = None,
) -> dict[str, Store]:
    """The observing stores for `--observe inventory`: store name -> its report's listing.

    `reports` maps each S3 store with an inventory to (the store holding its reports, their prefix).
    With a `spool` directory each report is read as a stream (`read_streamed`), its data files kept there.
    """
    prefixes = tuple(relist)
    out: dict[str, Store] = {}
    for index, (name, (holder, prefix)) in enumerate(sorted(reports.items())):
        live = stores[name]
        bucket = getattr(live, "bucket", name)
        manifest = newest_manifest(holder, prefix, bucket)
        report: Report
        if spool is None:
            report = read_report(holder, manifest, expected_bucket=bucket)
        else:
            report = read_streamed(holder, manifest, expected_bucket=bucket, directory=spool / f"inventory-{index}")
        log(name, report)
        out[name] = InventoryListing(live, report, prefixes)
    return out
