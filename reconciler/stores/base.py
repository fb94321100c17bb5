"""The Store protocol and the errors every store raises.

Keys are full keys inside the store: an S3 key, or a '/'-separated path
relative to a local root. Every mutating call carries its precondition so the
check happens as close to the bytes as the back end allows (S3 conditional
headers; a re-stat for local files).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from reconciler.keys import printable
from reconciler.model import Entry, Problem

if TYPE_CHECKING:
    from reconciler.stores.s3.journal import JournaledUpload

# Re-openable so a retried transfer starts again from the first byte.
# Told (md5, size) of the exact bytes a release is about to delete; raises unless S3 holds those bytes.
ConfirmHeld = Callable[[str, int], None]

OpenSource = Callable[[], AbstractContextManager[BinaryIO]]


class StoreError(Exception):
    """A store operation failed. `code` is the server's error code where there is one.

    The message is one line with control characters escaped: it names keys from other people's
    buckets and file names from other people's disks, and ends up in front of a person.
    """

    def __init__(self, message: str, *, code: str = "", key: str = "") -> None:
        super().__init__(printable(message))
        self.code = code
        self.key = key


class TransientStoreError(StoreError):
    """Throttling, 5xx, dropped connections: worth retrying with backoff."""


class PermanentStoreError(StoreError):
    """Access denied, missing bucket, bad request: retrying will not help."""


class StoreUnusable(PermanentStoreError):
    """The store cannot be used at all (ChecksReachable's answer, met by a first request): said as it is, not
    as a failure of whichever read or write happened to meet it."""


class ObjectChanged(StoreError):
    """A precondition failed: the object is not what the plan saw (HTTP 412)."""


def check_precondition(
    name: str, key: str, held: str | None, *, if_match: str | None, if_absent: bool, code: str = "412"
) -> None:
    """Raise ObjectChanged unless the version `key` is at now (`held`; None when absent) is what the
    precondition expects: nothing under `if_absent`, `if_match` under that. For stores that check it themselves."""
    if if_absent and held is not None:
        raise ObjectChanged(f"{name}:{key} appeared since the plan was made", code=code, key=key)
    if if_match is not None and held != if_match:
        raise ObjectChanged(f"{name}:{key} changed since the plan was made", code=code, key=key)


class Store(Protocol):
    name: str

    def list(self, prefix: str) -> Iterator[Entry]:
        """Every entry whose key starts with `prefix`, keys in full; md5 filled where cheaply known."""
        ...

    def stat(self, key: str) -> Entry | None: ...

    def open(self, key: str, *, if_match: str | None = None) -> AbstractContextManager[BinaryIO]:
        """The content at `key`; with `if_match`, only while it is still that version (ObjectChanged otherwise)."""
        ...

    def write(
        self, key: str, source: OpenSource, *, size: int, md5: str | None, if_match: str | None = None,
        if_absent: bool = False,
    ) -> Entry:
        """Store `size` bytes from `source` at `key`; the md5 is verified before the key shows it."""
        ...

    def copy(
        self, src_key: str, dst_key: str, *, md5: str | None, src_etag: str | None = None,
        if_match: str | None = None, if_absent: bool = False,
    ) -> Entry: ...

    def delete(self, key: str, *, if_match: str | None = None) -> None: ...


@runtime_checkable
class ReleasingStore(Protocol):
    """A store that can delete a local copy once the bytes being deleted are known to be held elsewhere."""

    def release(self, key: str, *, if_match: str | None, confirm: ConfirmHeld) -> None:
        """Delete `key` only if `confirm(md5, size)` of the very bytes deleted returns; else keep them, raise."""


@runtime_checkable
class ListsExpecting(Protocol):
    """A store that lists a prefix faster when told which keys to expect there (S3: ranges cut at them)."""

    def list_expecting(self, prefix: str, known: Iterable[str]) -> Iterator[Entry]:
        """What `list(prefix)` returns, in the same order; `known` (any order) only decides how it is fetched."""
        ...


@runtime_checkable
class ChecksReachable(Protocol):
    """A store that can tell, before anything is read or written, that it is missing or unreachable."""

    def check_bucket(self) -> None:
        """Raise a StoreError that says why the store cannot be used; return when it can."""


@runtime_checkable
class ChecksOnFirstUse(Protocol):
    """A store that can make the check of ChecksReachable with its first request instead of one of its own."""

    def check_on_first_use(self) -> None:
        """Let the first request raise the StoreError check_bucket would; prepare what that request needs."""


@runtime_checkable
class RecordsMd5s(Store, Protocol):
    """A store that keeps an object's md5 apart from what its version tag says (S3: metadata and ETag)."""

    def recorded_md5s(self, key: str) -> tuple[Entry, str | None, str | None] | None:
        """(entry, md5 recorded in metadata, md5 the version tag is); None when the object is gone."""
        ...


@runtime_checkable
class JournalsUploads(Protocol):
    """A store whose multipart uploads are recorded while in progress, so that a later apply (after a kill)
    aborts exactly the uploads pixel left and never another tool's."""

    @property
    def apply_id(self) -> str | None:
        """The apply the records this store writes name (its lock id); None outside an apply."""
        ...

    def for_apply(self, apply_id: str | None) -> Store:
        """The same store, its connections shared, writing records that name `apply_id`."""
        ...

    def journaled_uploads(self) -> tuple[JournaledUpload, ...]: ...

    def abort_journaled(self, upload: JournaledUpload) -> bool:
        """Abort a recorded upload and remove its record; False when it had already finished."""
        ...


# (absolute path, dev, ino, size, mtime_ns, ctime_ns): what the hash cache keys a file's md5 on.
FileIdentity = tuple[str, int, int, int, int, int]


@runtime_checkable
class HoldsLocalFiles(Protocol):
    """A store whose keys are files on this machine, so their md5s can be cached by file identity."""

    @property
    def root_path(self) -> str:
        """The absolute path every file_path() starts with."""
        ...

    def file_path(self, key: str) -> str:
        """The absolute path of `key` (lexical checks only: the cache never opens it through this)."""
        ...

    def walked_identity(self, entry: Entry) -> FileIdentity | None:
        """The identity the listing that made `entry` saw, without a syscall; None when it cannot tell."""
        ...


@runtime_checkable
class ReportsProblems(Protocol):
    """A store whose listings can meet what they cannot observe (LocalStore: unreadable directories,
    symlinks out of the root); read after listing, each problem's key becomes a gap, never a delete."""

    @property
    def problems(self) -> tuple[Problem, ...]: ...
