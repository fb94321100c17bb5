"""`pixel verify [--download]`: re-check the md5 recorded for every managed object.

Without --download each object is HEADed and its records are cross-checked:
the md5 pixel (or rclone) wrote into metadata against the md5 a single-part
ETag is. With --download every object is streamed (never held in memory),
its md5 recomputed and compared with what is recorded. Objects with no
recorded md5 are listed (a `pixel apply` rehashes them) but are not failures.
Any mismatch exits 1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click

from reconciler.commands import EXIT_ERROR, EXIT_OK
from reconciler.commands.common import error, load
from reconciler.errors import UserError
from reconciler.globs import matches
from reconciler.model import Desired
from reconciler.stores.base import StoreError
from reconciler.stores.s3 import S3Store
from reconciler.units import human_bytes
from reconciler.workflow import open_stores

CHUNK = 8 * 1024 * 1024
MISMATCH, UNRECORDED, VANISHED, OK = "mismatch", "unrecorded", "vanished", "ok"


@dataclass(frozen=True, slots=True)
class Checked:
    where: str
    status: str
    detail: str = ""
    bytes_read: int = 0


def _managed(desired: Desired, stores: dict[str, S3Store]) -> Iterator[tuple[S3Store, str]]:
    """Every S3 key some mapping covers (after its globs), once each."""
    seen: set[tuple[str, str]] = set()
    for spec in desired.mappings:
        store = stores.get(spec.s3_store)
        if store is None:
            continue
        for entry in store.list(spec.s3_prefix):
            rel = entry.key[len(spec.s3_prefix) :]
            if rel and matches(rel, spec.include, spec.exclude) and (store.name, entry.key) not in seen:
                seen.add((store.name, entry.key))
                yield store, entry.key


def _streamed_md5(store: S3Store, key: str) -> tuple[str, int]:
    digest = hashlib.md5()
    size = 0
    with store.open(key) as body:
        while chunk := body.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def check_object(store: S3Store, key: str, *, download: bool) -> Checked:
    where = f"{store.name}:{key}"
    found = store.recorded_md5s(key)
    if found is None:
        return Checked(where, VANISHED, "deleted while verify ran")
    entry, meta_md5, etag_md5 = found
    if meta_md5 and etag_md5 and meta_md5 != etag_md5:
        return Checked(where, MISMATCH, f"metadata records md5 {meta_md5} but the ETag is md5 {etag_md5}")
    recorded = meta_md5 or etag_md5
    if not download:
        return Checked(where, OK if recorded else UNRECORDED, "" if recorded else "no md5 recorded")
    actual, size = _streamed_md5(store, key)
    if size != entry.size:
        return Checked(where, MISMATCH, f"read {size} bytes, the object says {entry.size}", size)
    if recorded is None:
        return Checked(where, UNRECORDED, f"no md5 recorded; content md5 is {actual}", size)
    if actual != recorded:
        return Checked(where, MISMATCH, f"recorded md5 {recorded}, content md5 {actual}", size)
    return Checked(where, OK, bytes_read=size)


def verify(specs: Path, *, download: bool, parallelism: int) -> int:
    desired = load(specs)
    ws = open_stores(desired, parallelism=parallelism)
    s3_stores = {name: s for name, s in ws.stores.items() if isinstance(s, S3Store)}
    try:
        keys = list(_managed(desired, s3_stores))
        with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="pixel-verify") as pool:
            results = list(pool.map(lambda sk: check_object(sk[0], sk[1], download=download), keys))
    except StoreError as exc:
        raise UserError(f"verify could not read the stores: {exc}") from exc
    bad = [r for r in results if r.status == MISMATCH]
    unrecorded = [r for r in results if r.status == UNRECORDED]
    for r in sorted(bad, key=lambda r: r.where):
        click.echo(f"  ✗ {r.where}: {r.detail}")
    for r in sorted(unrecorded, key=lambda r: r.where):
        click.echo(f"  ? {r.where}: {r.detail} (pixel apply rehashes it)")
    how = f"downloaded {human_bytes(sum(r.bytes_read for r in results))}" if download else "recorded hashes only"
    click.echo(
        f"Verified {len(results)} object(s) ({how}): {len(bad)} mismatch(es), "
        f"{len(unrecorded)} without a recorded md5."
    )
    if bad:
        error(f"{len(bad)} object(s) do not match their recorded md5")
        return EXIT_ERROR
    return EXIT_OK
