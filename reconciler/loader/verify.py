"""An object read without the cache, verified before its first byte is handed on.

When the loader knows what an object must be (its md5 from the registry, the final
dataset's manifest or a HEAD; its size), no record of other bytes may reach the
caller: a record yielded cannot be taken back by an error raised at the end. So an
object read uncached (no cache, or larger than `cache_limit`) is spooled whole
first: in memory up to SPOOL_IN_MEMORY bytes, else to an unlinked temporary file
in `directory` (the cache's directory when there is one), then hashed and checked,
and only then read. The guarantee holds for every size; the price is that the
first record of an uncached object waits for its whole download, and that disk
must hold the largest uncached object once while it is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, cast

from reconciler.stores.base import PermanentStoreError

CHUNK = 1024 * 1024
SPOOL_IN_MEMORY = 8 * CHUNK


@contextlib.contextmanager
def verified_read(
    fetch: Callable[[], AbstractContextManager[BinaryIO]],
    *,
    md5: str | None,
    size: int | None,
    label: str,
    directory: Path | None = None,
) -> Iterator[BinaryIO]:
    """The object's bytes once they hash to `md5` and number `size` (each when known); else PermanentStoreError
    (code BadDigest) before anything is read. With neither known there is nothing to check: streamed as is."""
    if md5 is None and size is None:
        with fetch() as stream:
            yield stream
        return
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    where = None if directory is None else str(directory)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=where) as spool:
        digest = hashlib.md5()
        written = 0
        with fetch() as stream:
            while data := stream.read(CHUNK):
                digest.update(data)
                spool.write(data)
                written += len(data)
        got = digest.hexdigest()
        if (md5 is not None and got != md5) or (size is not None and written != size):
            raise PermanentStoreError(
                f"{label}: read {written} bytes with md5 {got}, expected "
                f"{size if size is not None else 'any number of'} bytes with md5 {md5 or '(any)'}; "
                "none of its records was yielded",
                code="BadDigest",
                key=label,
            )
        spool.seek(0)
        yield cast(BinaryIO, spool)
