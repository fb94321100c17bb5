"""The Store protocol and the errors every store raises.

Keys are full keys inside the store: an S3 key, or a '/'-separated path
relative to a local root. Every mutating call carries its precondition so the
check happens as close to the bytes as the back end allows (S3 conditional
headers; a re-stat for local files).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol, runtime_checkable

from reconciler.model import Entry

# Re-openable so a retried transfer starts again from the first byte.
OpenSource = Callable[[], AbstractContextManager[BinaryIO]]


class StoreError(Exception):
    """A store operation failed. `code` is the server's error code where there is one."""

    def __init__(self, message: str, *, code: str = "", key: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.key = key


class TransientStoreError(StoreError):
    """Throttling, 5xx, dropped connections: worth retrying with backoff."""


class PermanentStoreError(StoreError):
    """Access denied, missing bucket, bad request: retrying will not help."""


class ObjectChanged(StoreError):
    """A precondition failed: the object is not what the plan saw (HTTP 412)."""


class Store(Protocol):
    name: str

    def list(self, prefix: str) -> Iterator[Entry]:
        """Every entry whose key starts with `prefix`, keys in full; md5 filled where cheaply known."""
        ...

    def stat(self, key: str) -> Entry | None: ...

    def open(self, key: str) -> AbstractContextManager[BinaryIO]: ...

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
        """Store `size` bytes from `source` at `key`; the md5 is verified before the key shows it."""
        ...

    def copy(
        self,
        src_key: str,
        dst_key: str,
        *,
        md5: str | None,
        src_etag: str | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> Entry: ...

    def delete(self, key: str, *, if_match: str | None = None) -> None: ...


@runtime_checkable
class ListsExpecting(Protocol):
    """A store that lists a prefix faster when told which keys to expect there (S3: ranges cut at them)."""

    def list_expecting(self, prefix: str, known: Iterable[str]) -> Iterator[Entry]:
        """What `list(prefix)` returns, in the same order; `known` (any order) only decides how it is fetched."""
        ...
