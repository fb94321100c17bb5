"""Local content hashing: streamed in fixed chunks so memory does not grow with file size."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from reconciler.model import Entry
from reconciler.stores.base import Store

CHUNK = 8 * 1024 * 1024


class Hasher(Protocol):
    def md5(self, store: Store, entry: Entry) -> str: ...

    def known(self, store: Store, entry: Entry) -> str | None:
        """The md5 if it can be had without reading the file (a cache hit), else None."""
        ...


@runtime_checkable
class KnowsMany(Protocol):
    """A Hasher that answers `known` for many entries at once (the hash cache: one lock, no per-file objects)."""

    def known_many(self, store: Store, entries: Sequence[Entry], base: str = "") -> list[str | None]:
        """`known` of each entry, its key taken relative to `base`."""
        ...


def md5_of_stream(store: Store, key: str) -> str:
    digest = hashlib.md5()
    with store.open(key) as stream:
        # hashlib releases the GIL on large updates, so threads hash in parallel.
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class StreamingHasher:
    """Reads every file every time; counts what it read so tests and benchmarks can check."""

    def __init__(self) -> None:
        self.files_read = 0
        self.bytes_read = 0

    def known(self, store: Store, entry: Entry) -> str | None:
        return None

    def md5(self, store: Store, entry: Entry) -> str:
        self.files_read += 1
        self.bytes_read += entry.size
        return md5_of_stream(store, entry.key)
