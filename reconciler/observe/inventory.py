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
"""

from __future__ import annotations

import bisect
import csv
import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, Protocol, runtime_checkable
from urllib.parse import unquote_plus

from reconciler.model import Entry
from reconciler.stores.base import OpenSource, Store, StoreError

REQUIRED_COLUMNS = ("Key", "Size", "ETag")
_MD5_HEX = frozenset("0123456789abcdef")


class InventoryError(Exception):
    """The report is missing, unreadable or not in the documented format."""


@dataclass(frozen=True, slots=True)
class InventoryReport:
    source_bucket: str
    manifest: str  # "bucket/key" of the manifest.json read
    created: datetime
    entries: tuple[Entry, ...]  # sorted by key

    def age(self, now: datetime) -> str:
        seconds = max(0, int((now - self.created).total_seconds()))
        days, rest = divmod(seconds, 86400)
        hours, rest = divmod(rest, 3600)
        return f"{days}d {hours}h {rest // 60}m" if days else f"{hours}h {rest // 60}m"


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


def _rows(raw: bytes, where: str) -> Iterator[list[str]]:
    try:
        text = gzip.decompress(raw).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise InventoryError(f"{where}: not a gzip-compressed UTF-8 CSV file ({exc})") from exc
    yield from csv.reader(io.StringIO(text))


def read_report(store: Store, manifest_key: str, *, expected_bucket: str) -> InventoryReport:
    """Parse manifest.json and every data file it names; checks each file's MD5checksum."""
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
    columns = [c.strip() for c in str(_field(manifest, "fileSchema", where)).split(",")]
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
    entries = sorted(_entries(store, files, columns), key=lambda e: e.key)
    return InventoryReport(source, f"{store.name}:{manifest_key}", created, tuple(entries))


def _entries(store: Store, files: list[dict[str, Any]], columns: list[str]) -> Iterator[Entry]:
    at = {name: i for i, name in enumerate(columns)}
    key_i, size_i, etag_i = at["Key"], at["Size"], at["ETag"]
    optional = {name: at.get(name) for name in ("LastModifiedDate", "IsLatest", "IsDeleteMarker", "EncryptionStatus")}

    def cell(row: list[str], name: str) -> str:
        index = optional[name]
        return row[index] if index is not None and index < len(row) else ""

    for item in files:
        key = str(item["key"])
        where = f"{store.name}:{key}"
        try:
            with store.open(key) as body:
                raw = body.read()
        except StoreError as exc:
            raise InventoryError(f"cannot read the S3 Inventory data file {where}: {exc}") from exc
        expected = str(item.get("MD5checksum", "")).lower()
        if expected and hashlib.md5(raw).hexdigest() != expected:
            raise InventoryError(f"{where}: the data file's md5 is not the manifest's MD5checksum (corrupt or partial)")
        for line, row in enumerate(_rows(raw, where), 1):
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

    def __init__(self, live: Store, report: InventoryReport, relist: Iterable[str] = ()) -> None:
        self.name = live.name
        self.live = live
        self.report = report
        self.relist = tuple(sorted(set(relist)))
        self._keys = [e.key for e in report.entries]

    def _relisted(self, key: str) -> bool:
        return any(key.startswith(p) for p in self.relist)

    def list(self, prefix: str) -> Iterator[Entry]:
        start = bisect.bisect_left(self._keys, prefix)
        for entry in self.report.entries[start:]:
            if not entry.key.startswith(prefix):
                break
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
    log: Callable[[str, InventoryReport], None],
) -> dict[str, Store]:
    """The observing stores for `--observe inventory`: store name -> its report's listing.

    `reports` maps each S3 store with an inventory to (the store holding its reports, their prefix).
    """
    prefixes = tuple(relist)
    out: dict[str, Store] = {}
    for name, (holder, prefix) in sorted(reports.items()):
        live = stores[name]
        bucket = getattr(live, "bucket", name)
        report = read_report(holder, newest_manifest(holder, prefix, bucket), expected_bucket=bucket)
        log(name, report)
        out[name] = InventoryListing(live, report, prefixes)
    return out
