"""`pixel datasets` (what the registry resolves to now) and `pixel cat NAME` (a dataset's records as JSON lines)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_OK
from reconciler.commands.common import load
from reconciler.errors import UserError
from reconciler.loader.api import dataset_rows, open_dataset
from reconciler.loader.formats import DatasetFormatError
from reconciler.loader.resolve import DatasetNotFound
from reconciler.loader.storeset import StoreSet
from reconciler.model import Desired
from reconciler.progress import task_progress
from reconciler.stores.base import ChecksReachable, StoreError
from reconciler.units import human_bytes


@contextlib.contextmanager
def _as_user_errors() -> Iterator[None]:
    try:
        yield
    except (DatasetNotFound, DatasetFormatError, StoreError, ValueError) as exc:
        raise UserError(str(exc).strip("'\"")) from exc


def _json_line(record: dict[str, Any]) -> bytes:
    try:
        line = orjson.dumps(record)
    except TypeError:
        # orjson writes no integer beyond 64 bits: the standard library writes it exactly.
        return _stdlib_line(record)
    # orjson writes NaN and ±Infinity as null, which would change the data; the source wrote them as NaN/Infinity
    # (only the standard library's parser accepts those), so they go out the same way. Searched only in the
    # bytes first: a record without a null is written as it is, without a walk.
    if b"null" in line and _non_finite(record):
        return _stdlib_line(record)
    return line + b"\n"


def _stdlib_line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


def render_datasets_text(rows: list[dict[str, Any]]) -> str:
    header = ["NAME", "TIER", "FORMAT", "SIZE", "MD5", "KEY"]
    table = [
        [
            row["name"],
            row["tier"] or "-",
            row["format"] or "-",
            human_bytes(row["size"]) if row["size"] is not None else "-",
            row["md5"] or ("-" if len(row["keys"]) < 2 else "(shards)"),
            (row["keys"][0] if len(row["keys"]) == 1 else f"{len(row['keys'])} objects") if row["keys"] else "absent",
        ]
        for row in rows
    ]
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *table]]
    notes = [f"  ! {w}" for row in rows for w in row["warnings"]]
    return "\n".join(lines + notes) + "\n"


def _check_reachable(desired: Desired, stores: StoreSet) -> None:
    """Every store a dataset resolves in answers: a missing bucket (or a wrong endpoint) is an error naming
    it, not every dataset listed "absent" with exit 0, which reads as "the data is gone"."""
    names = {d.store for d in desired.datasets} | {d.source.store for d in desired.datasets if d.source}
    names |= {t.store for t in desired.tiers}  # a name that is not registered is looked for tier by tier
    for name in sorted(names):
        store = stores[name]
        if isinstance(store, ChecksReachable):
            store.check_bucket()


def datasets(specs: Path, *, tier: str | None = None, output_format: OutputFormat = OutputFormat.TEXT) -> int:
    """Every registered dataset with the tier, key(s), size and md5 it resolves to now. Reads only."""
    desired = load(specs)
    stores = StoreSet(desired.stores)
    with _as_user_errors():
        _check_reachable(desired, stores)
        rows = dataset_rows(desired, stores, tier)
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
    else:
        click.echo(render_datasets_text(rows), nl=False)
    return EXIT_OK


# The records bar moves every this many records: a lock and a clock read per record would slow a fast cat.
_TICK_EVERY = 256


def cat(
    specs: Path, name: str, *, category: str | None = None, limit: int | None = None, on_error: str = "raise",
    offline: bool = False,
) -> int:
    """Stream a dataset's records to stdout, one JSON object per line; stops quietly when the reader goes."""
    desired = load(specs)
    out = sys.stdout.buffer
    stores = StoreSet(desired.stores)
    with _as_user_errors():
        if not offline:  # offline never contacts S3, the bucket check included
            _check_reachable(desired, stores)  # else a missing bucket reads as "no dataset of that name"
        dataset, resolved = open_dataset(
            desired, name, stores=stores, category=category, on_error="skip" if on_error == "skip" else "raise",
            offline=offline,
        )
        for warning in resolved.warnings:
            click.echo(f"Warning: {warning}", err=True)
        if limit == 0:
            return EXIT_OK
        # A records bar on stderr while stdout goes to a file or a pipe; never between records on a terminal.
        with task_progress("reading", unit="records", show=not sys.stdout.isatty()) as tick:
            try:
                count = 0
                for count, record in enumerate(dataset, 1):
                    out.write(_json_line(record))
                    if count % _TICK_EVERY == 0:
                        tick(_TICK_EVERY, 0)
                    if limit is not None and count >= limit:
                        break
                tick(count % _TICK_EVERY, 0)
                out.flush()
            except BrokenPipeError:
                # `pixel cat big | head -1`: the reader is gone, which is not an error. Python would report the
                # failed flush of stdout at exit: point stdout at /dev/null first.
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
    if dataset.skipped:
        click.echo(f"Warning: {dataset.skipped} malformed record(s) skipped", err=True)
    return EXIT_OK
