"""Where pixel keeps its files on this machine: one directory, and what lives under it.

Everything here is a cache or a record that may be lost: the local hash cache (`observe/hashcache.py`), the
specs already known valid (`spec/validcache.py`), the Desired last built from them (`spec/desiredcache.py`),
the last apply per bucket (`apply/history.py`) and the loader's copies of objects and record indexes
(`loader/`). Each caller asks this module rather than joining
names onto the directory itself, so one environment variable moves all of them together.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

CACHE_ENV = "PIXEL_CACHE_DIR"
HASH_CACHE_FILE = "hashes.sqlite3"
VALID_SPECS_FILE = "specs-valid.json"


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """$PIXEL_CACHE_DIR, else $XDG_CACHE_HOME/pixel, else ~/.cache/pixel."""
    env = os.environ if env is None else env
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV])
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "pixel"
    return Path.home() / ".cache" / "pixel"


def hash_cache_file(env: Mapping[str, str] | None = None) -> Path:
    """The SQLite file of local files' md5s."""
    return cache_dir(env) / HASH_CACHE_FILE


def valid_specs_file(env: Mapping[str, str] | None = None) -> Path:
    """The digests of spec documents that passed the JSON Schema."""
    return cache_dir(env) / VALID_SPECS_FILE


def desired_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """One file per spec directory: the Desired last built from it and what it was built from."""
    return cache_dir(env) / "desired"


def apply_history_dir(env: Mapping[str, str] | None = None) -> Path:
    """One small JSON record per bucket: when it was last applied to from this machine."""
    return cache_dir(env) / "applies"


def dataset_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The loader's verified copies of objects (and, by default, its record indexes under `indexes/`)."""
    return cache_dir(env) / "datasets"


@contextmanager
def atomic_file(path: Path, *, refuse: type[Exception], what: str) -> Iterator[BinaryIO]:
    """A file written whole or not at all: a temp file beside `path`, fsynced and renamed over it when the block
    ends; removed if the block raises (kill -9 leaves only a dot-named temp file, never half of `path`). A temp
    file that cannot be made is `refuse("cannot write the {what} {path}: why")`."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise refuse(f"cannot write the {what} {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
