"""`pixel verify [--download]`: re-check the md5 recorded for every managed object.

Managed objects are every S3 key a mapping covers (after its globs), the
images of every actor (listed in the specs or discovered from directory
names), every dataset's canonical object and S3 source, and generated files
kept in S3. A canonical object not in S3 yet is noted, not failed.

Without --download each object is HEADed and its records are cross-checked:
the md5 pixel (or rclone) wrote into metadata against the md5 a single-part
ETag is. With --download every object is streamed (never held in memory),
its md5 recomputed and compared with what is recorded. Objects with no
recorded md5 are listed (a `pixel apply` rehashes them) but are not failures.
Any mismatch exits 1.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_ERROR, EXIT_OK
from reconciler.commands.common import error, load
from reconciler.errors import UserError
from reconciler.keys import printable
from reconciler.model import Desired, ObjectRef
from reconciler.progress import Tick, no_progress, task_progress
from reconciler.rules import Selection, mapping_own_space
from reconciler.stores.base import RecordsMd5s, StoreError
from reconciler.units import human_bytes
from reconciler.workflow import open_stores

CHUNK = 8 * 1024 * 1024
VERIFY_FORMAT_VERSION = 1


class Verdict(enum.StrEnum):
    """What verify found for one object."""

    OK = "ok"
    MISMATCH = "mismatch"  # the records disagree with each other or with the bytes: exit 1
    UNRECORDED = "unrecorded"  # no md5 recorded (apply rehashes it): listed, not a failure
    VANISHED = "vanished"  # listed, then deleted while verify ran
    ABSENT = "absent"  # never listed: noted when it should exist


@dataclass(frozen=True, slots=True)
class Target:
    store: RecordsMd5s
    key: str
    # Why the object should exist when it was not listed: said when it does not (None: it was listed, or its
    # absence is expected, like a moved dataset's source).
    absent_note: str | None = None
    listed: bool = True


@dataclass(frozen=True, slots=True)
class Checked:
    store: str
    key: str
    status: Verdict
    detail: str = ""
    bytes_read: int = 0

    @property
    def where(self) -> str:
        return f"{self.store}:{self.key}"


def _managed(desired: Desired, stores: dict[str, RecordsMd5s]) -> Iterator[Target]:
    """Every managed S3 object, once each.

    `desired` must be the workspace's (actors discovered): discovered actors are mappings there like any other.
    """
    seen: set[tuple[str, str]] = set()
    for spec in desired.mappings:
        store = stores.get(spec.s3_store)
        if store is None:
            continue
        # What the mapping owns, as the observer sees it: not pixel's own space, not a file below min_size.
        owned = Selection(spec, mapping_own_space(desired, spec))
        for _, entry in owned.select(spec.s3_prefix, store.list(spec.s3_prefix)):
            if (store.name, entry.key) not in seen:
                seen.add((store.name, entry.key))
                yield Target(store, entry.key)
    # Named objects: HEADed directly whether or not a mapping covers them.
    named: list[tuple[ObjectRef, str | None]] = []
    for dataset in desired.datasets:
        note = f"dataset {dataset.name!r}: not in S3 yet (pixel apply puts it there)"
        named.append((ObjectRef(dataset.store, dataset.key), note))
        if dataset.source is not None:
            named.append((dataset.source, None))  # gone once a move organised it: nothing to say
    for ref in (desired.registry, desired.inventory, *(actor.manifest for actor in desired.actors)):
        if ref is not None:
            named.append((ref, None))
    for ref, absent_note in named:
        store = stores.get(ref.store)
        if store is not None and (store.name, ref.key) not in seen:
            seen.add((store.name, ref.key))
            yield Target(store, ref.key, absent_note=absent_note, listed=False)


def _streamed_md5(store: RecordsMd5s, key: str, on_bytes: Tick = no_progress) -> tuple[str, int]:
    digest = hashlib.md5()
    size = 0
    with store.open(key) as body:
        while chunk := body.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            on_bytes(0, len(chunk))
    return digest.hexdigest(), size


def check_object(
    store: RecordsMd5s,
    key: str,
    *,
    download: bool,
    listed: bool = True,
    absent_note: str | None = None,
    on_bytes: Tick = no_progress,
) -> Checked:
    result = functools.partial(Checked, store.name, key)
    found = store.recorded_md5s(key)
    if found is None:
        if listed:
            return result(Verdict.VANISHED, "deleted while verify ran")
        return result(Verdict.ABSENT, absent_note or "")
    entry, meta_md5, etag_md5 = found
    if meta_md5 and etag_md5 and meta_md5 != etag_md5:
        return result(Verdict.MISMATCH, f"metadata records md5 {meta_md5} but the ETag is md5 {etag_md5}")
    recorded = meta_md5 or etag_md5
    if not download:
        return result(Verdict.OK if recorded else Verdict.UNRECORDED, "" if recorded else "no md5 recorded")
    actual, size = _streamed_md5(store, key, on_bytes)
    if size != entry.size:
        return result(Verdict.MISMATCH, f"read {size} bytes, the object says {entry.size}", size)
    if recorded is None:
        return result(Verdict.UNRECORDED, f"no md5 recorded; content md5 is {actual}", size)
    if actual != recorded:
        return result(Verdict.MISMATCH, f"recorded md5 {recorded}, content md5 {actual}", size)
    return result(Verdict.OK, bytes_read=size)


def check_target(target: Target, *, download: bool, tick: Tick = no_progress) -> Checked:
    checked = check_object(
        target.store, target.key, download=download, listed=target.listed, absent_note=target.absent_note,
        on_bytes=tick,
    )
    tick(1, 0)
    return checked


def _json_report(checked: list[Checked], *, download: bool) -> dict[str, Any]:
    """`verify --format json`: every status counted, and every object that is not `ok` (an ok object is only
    counted: a bucket of millions must not print millions of lines). Shape documented in docs/ci.md."""
    counts = {verdict.value: 0 for verdict in Verdict}
    for r in checked:
        counts[r.status.value] += 1
    noted = [r for r in checked if r.status is not Verdict.OK and (r.status is not Verdict.ABSENT or r.detail)]
    bad = counts[Verdict.MISMATCH.value]
    return {
        "format_version": VERIFY_FORMAT_VERSION,
        "status": "mismatch" if bad else "ok",
        "download": download,
        "verified": len(checked) - counts[Verdict.ABSENT.value],
        "bytes_read": sum(r.bytes_read for r in checked),
        "counts": counts,
        "objects": [
            {"store": r.store, "key": r.key, "status": r.status.value, "detail": r.detail, "bytes_read": r.bytes_read}
            for r in sorted(noted, key=lambda r: (r.store, r.key))
        ],
    }


def verify(specs: Path, *, download: bool, parallelism: int, output_format: OutputFormat = OutputFormat.TEXT) -> int:
    ws = open_stores(load(specs), parallelism=parallelism)  # discovers actors: ws.desired has their mappings
    s3_stores = {name: s for name, s in ws.stores.items() if isinstance(s, RecordsMd5s)}
    try:
        targets = list(_managed(ws.desired, s3_stores))
        with (
            task_progress("verifying", total=len(targets)) as tick,
            ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="pixel-verify") as pool,
        ):
            checked = list(pool.map(lambda t: check_target(t, download=download, tick=tick), targets))
    except StoreError as exc:
        raise UserError(f"verify could not read the stores: {exc}") from exc
    if output_format == "json":
        report = _json_report(checked, download=download)
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return EXIT_ERROR if report["status"] != "ok" else EXIT_OK
    results = [r for r in checked if r.status != Verdict.ABSENT]
    absent = [r for r in checked if r.status == Verdict.ABSENT and r.detail]
    bad = [r for r in results if r.status == Verdict.MISMATCH]
    unrecorded = [r for r in results if r.status == Verdict.UNRECORDED]
    for r in sorted(bad, key=lambda r: r.where):
        click.echo(printable(f"  ✗ {r.where}: {r.detail}"))
    for r in sorted(unrecorded, key=lambda r: r.where):
        click.echo(printable(f"  ? {r.where}: {r.detail} (pixel apply rehashes it)"))
    for r in sorted(absent, key=lambda r: r.where):
        click.echo(printable(f"  - {r.where}: {r.detail}"))
    how = f"downloaded {human_bytes(sum(r.bytes_read for r in results))}" if download else "recorded hashes only"
    click.echo(
        f"Verified {len(results)} object(s) ({how}): {len(bad)} mismatch(es), {len(unrecorded)} without a recorded md5."
    )
    if bad:
        error(f"{len(bad)} object(s) do not match their recorded md5")
        return EXIT_ERROR
    return EXIT_OK
