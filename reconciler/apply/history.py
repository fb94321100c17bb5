"""When each bucket was last applied to, from this machine: what the status page shows as "last apply".

One small JSON file per bucket (endpoint and bucket name hashed into the file
name) under pixel's cache directory, written temp-then-rename at the end of
every apply that ran actions. A lost or unreadable record only loses that
line of the status page, so failures are logged, never raised.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.logs import get_logger
from reconciler.manifests.common import iso_ms_from_ns
from reconciler.model import S3StoreSpec
from reconciler.paths import apply_history_dir


def _record_path(spec: S3StoreSpec, env: Mapping[str, str] | None = None) -> Path:
    identity = f"{spec.endpoint or 'aws'}|{spec.bucket}".encode()
    return apply_history_dir(env) / f"{hashlib.sha256(identity).hexdigest()[:24]}.json"


def record_apply(
    buckets: Iterable[S3StoreSpec], *, counts: Mapping[str, int], targets: Sequence[str], ok: bool
) -> None:
    document = {"finished": iso_ms_from_ns(time.time_ns()), "counts": dict(counts), "targets": list(targets), "ok": ok}
    for spec in buckets:
        path = _record_path(spec)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".apply.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({**document, "bucket": spec.bucket}, handle)
            os.replace(tmp, path)
        except OSError as exc:
            get_logger("pixel.apply").warning("could not record the apply's time", bucket=spec.bucket, error=str(exc))


def last_apply(buckets: Iterable[S3StoreSpec]) -> dict[str, Any] | None:
    """The newest record among `buckets`, or None when none of them was applied to from here."""
    newest: dict[str, Any] | None = None
    for spec in buckets:
        try:
            document = json.loads(_record_path(spec).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        fresh = isinstance(document, dict) and isinstance(document.get("finished"), str)
        if fresh and (newest is None or document["finished"] > newest["finished"]):
            newest = document
    return newest
