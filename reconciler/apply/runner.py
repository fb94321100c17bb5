"""The work behind each action kind, against the Store protocol."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, Protocol, TypeGuard, TypeVar, cast, runtime_checkable

from reconciler.apply.final import FinalCompiler
from reconciler.apply.manifest_writer import ManifestWriter
from reconciler.apply.vouched import CachedMd5s, VouchingFile
from reconciler.manifests import final as final_manifest
from reconciler.model import TEMP_PREFIX, Action, ActionKind, Desired, Entry, ObjectRef, Precondition
from reconciler.stores.base import (
    HoldsLocalFiles,
    ObjectChanged,
    OpenSource,
    PermanentStoreError,
    ReleasingStore,
    Store,
    StoreError,
    TransientStoreError,
)
from reconciler.stores.s3.direct.bulk import BulkSender, Endpoint, Wire
from reconciler.stores.s3.direct.http_pool import Response

CHUNK = 8 * 1024 * 1024
T = TypeVar("T")


@runtime_checkable
class WritesInBulk(Protocol):
    """A store that can hand its small writes to one thread's bulk sender (stores/s3/store.py's S3Store)."""

    def bulk_endpoint(self, sender: BulkSender[Any], connections: int) -> Endpoint[Any] | None: ...

    def bulk_fits(self, size: int) -> bool: ...

    def put_wire(
        self, key: str, source: OpenSource, *, size: int, md5: str, if_match: str | None = None,
        if_absent: bool = False,
    ) -> Wire: ...

    def put_answered(self, key: str, answer: Response | Exception, *, size: int, md5: str) -> Entry: ...


class ByteCounts(Protocol):
    """What the apply summary reports of the bytes moved; one runner's counters, or a cluster's sums."""

    @property
    def bytes_uploaded(self) -> int: ...

    @property
    def bytes_downloaded(self) -> int: ...

    @property
    def bytes_copied(self) -> int: ...


@dataclasses.dataclass(slots=True)
class ByteTotals:
    """ByteCounts summed over many runners (one per batch on a cluster)."""

    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
    bytes_copied: int = 0

    def add(self, other: ByteCounts) -> None:
        self.bytes_uploaded += other.bytes_uploaded
        self.bytes_downloaded += other.bytes_downloaded
        self.bytes_copied += other.bytes_copied


class ActionRunner:
    """Callable the executor runs per action. Counts bytes moved, for the summary and the tests."""

    def __init__(
        self,
        stores: Mapping[str, Store],
        manifests: Callable[[Action], None] | None = None,
        on_bytes: Callable[[Action, int], None] | None = None,
        compiler: Callable[[Action], None] | None = None,
    ) -> None:
        self.stores = stores
        # Told of every chunk a transfer reads from its source: progress bars move during a large file.
        self.on_bytes = on_bytes
        # Renders and writes generated files (reconciler.apply.manifest_writer); kept apart so this module stays small.
        self.manifests = manifests
        # Builds and publishes the final dataset (reconciler.apply.final); also apart, for the same reason.
        self.compiler = compiler
        self._lock = threading.Lock()
        self._named: dict[ObjectRef, frozenset[str]] = {}
        self.bytes_uploaded = 0
        self.bytes_downloaded = 0
        self.bytes_copied = 0  # server-side: never crossed this machine's network
        # What vouches for a local source's planned md5, so a big upload does not hash the file again.
        self.cached_md5s = CachedMd5s()
        self._local_files: dict[str, bool] = {}

    def __call__(self, action: Action) -> None:
        handler = {
            ActionKind.UPLOAD: self._transfer,
            ActionKind.DOWNLOAD: self._transfer,
            ActionKind.DELETE: self._delete,
            ActionKind.REHASH: self._rehash,
            ActionKind.COPY: self._copy,
            ActionKind.MOVE: self._copy,  # the source's delete is its own node, after this one
            ActionKind.VERIFY: self._verify,
            ActionKind.RELEASE_LOCAL: self._release,
            ActionKind.WRITE_MANIFEST: self.manifests,
            ActionKind.COMPILE: self.compiler,
        }.get(action.kind)
        if handler is None:
            raise PermanentStoreError(f"{action.id}: no runner for action kind {action.kind.value}")
        handler(action)

    def already_settled(self, action: Action) -> bool:
        """Whether the action's effect is already in place: its target holds the content it was to get.

        A batch run again after its worker died finds the work of the first run done; its
        preconditions then fail (412, or the source of a finished move is gone), and this
        tells that apart from a real conflict.
        """
        if action.kind in (ActionKind.UPLOAD, ActionKind.DOWNLOAD, ActionKind.COPY, ActionKind.MOVE):
            if action.md5 is None:
                return False
            found = self.stores[action.target.store].stat(action.target.key)
            return found is not None and found.size == action.size and found.md5 == action.md5
        if action.kind in (ActionKind.DELETE, ActionKind.RELEASE_LOCAL):
            return self.stores[action.target.store].stat(action.target.key) is None
        if action.kind is ActionKind.REHASH:
            found = self.stores[action.target.store].stat(action.target.key)
            return found is not None and found.md5 is not None and found.etag == action.precondition.source_etag
        return False

    def run_idempotent(self, action: Action) -> None:
        """Run the action; a refusal whose effect is already in place counts as done (see already_settled)."""
        try:
            self(action)
        except StoreError as exc:
            if isinstance(exc, TransientStoreError) or not self._settled_quietly(action):
                raise

    def _settled_quietly(self, action: Action) -> bool:
        try:
            return self.already_settled(action)
        except StoreError:
            return False

    def _transfer(self, action: Action) -> None:
        self._written(action, self.stores[action.target.store].write)
        self._moved(action)

    def upload_wire(self, action: Action, target: WritesInBulk) -> Wire:
        """What `_transfer` would send for a small upload (`target.bulk_fits`), its checks made and its source read,
        as a request for one thread's bulk sender; `upload_answered` reads its answer."""
        if action.md5 is None:
            raise PermanentStoreError(f"upload {action.target}: pixel uploads only content whose md5 it knows")
        return self._written(action, target.put_wire)

    def _written(self, action: Action, write: Callable[..., T]) -> T:
        """`write` (a store's `write`, or `put_wire`) of the action's source, once it is found unchanged."""
        source, source_key = self._source(action)
        pre = action.precondition
        return write(
            action.target.key,
            lambda: self._counted(action, source, source_key),
            size=action.size,
            md5=action.md5,
            if_match=pre.target_etag,
            if_absent=pre.target_absent,
        )

    def upload_answered(self, action: Action, target: WritesInBulk, answer: Response | Exception) -> None:
        """`upload_wire`'s request answered: done as `_transfer` would be, or its failure raised as write's."""
        assert action.md5 is not None
        target.put_answered(action.target.key, answer, size=action.size, md5=action.md5)
        self._moved(action)

    def _moved(self, action: Action) -> None:
        with self._lock:
            if action.kind is ActionKind.UPLOAD:
                self.bytes_uploaded += action.size
            else:
                self.bytes_downloaded += action.size

    def _source(self, action: Action) -> tuple[Store, str]:
        """A transfer's source store and key, once its source is found to be still what the plan saw."""
        assert action.source is not None
        source = self.stores[action.source.store]
        pre = action.precondition
        current = source.stat(action.source.key)
        if current is None:
            raise ObjectChanged(
                f"{action.source} disappeared since the plan was made", code="412", key=action.source.key
            )
        if pre.source_etag is not None and current.etag != pre.source_etag and not self._planned_bytes(action, current):
            raise ObjectChanged(
                f"{action.source} changed since the plan was made (size/mtime or ETag differs); re-run pixel plan",
                code="412",
                key=action.source.key,
            )
        return source, action.source.key

    def _planned_bytes(self, action: Action, current: Entry) -> bool:
        """Whether an upload's file whose version token moved still holds the bytes the plan reviewed.

        The token (size, mtime, ctime, inode) pins the file as it was looked at, and a checkout of the same
        commit in another job (a saved plan applied on merge) moves all but the size. The plan's md5 says what
        the file held: re-hashed here, the same bytes may go. The upload then checks the bytes it sends against
        that same md5 (Content-MD5, or the whole-file digest of a multipart upload), so a change after this read
        is refused as well; never uploaded under the reviewed md5."""
        if action.kind is not ActionKind.UPLOAD or action.md5 is None or action.source is None:
            return False
        if current.size != action.size:
            return False
        digest = hashlib.md5()
        with self.stores[action.source.store].open(action.source.key) as body:
            while chunk := body.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest() == action.md5

    @contextlib.contextmanager
    def _counted(self, action: Action, store: Store, key: str) -> Iterator[BinaryIO]:
        with store.open(key) as stream:
            if action.md5 is not None and self._holds_local_files(store):
                stream = cast(BinaryIO, VouchingFile(stream, store.file_path(key), action.md5, self.cached_md5s))
            on_bytes = self.on_bytes
            if on_bytes is None:
                yield stream
            else:
                yield cast(BinaryIO, _CountingReader(stream, lambda n: on_bytes(action, n)))

    def _holds_local_files(self, store: Store) -> TypeGuard[HoldsLocalFiles]:
        # Asked per transfer: a runtime Protocol's isinstance costs ~10 us, a dict lookup 50 ns.
        known = self._local_files.get(store.name)
        if known is None:
            known = self._local_files[store.name] = isinstance(store, HoldsLocalFiles)
        return known

    def _delete(self, action: Action) -> None:
        store = self.stores[action.target.store]
        if action.source is not None and self._named_by(action.source, action.target.key):
            return  # a final-dataset shard the manifest now in place names (reused by the new build): kept
        store.delete(action.target.key, if_match=action.precondition.target_etag)

    def _named_by(self, manifest: ObjectRef, key: str) -> bool:
        """Whether the final-dataset manifest at `manifest` names `key`; an unreadable one keeps everything."""
        store = self.stores[manifest.store]
        with self._lock:
            named = self._named.get(manifest)
        if named is None:
            if store.stat(manifest.key) is None:
                named = frozenset()
            else:
                with store.open(manifest.key) as body:
                    content = body.read()
                try:
                    published = final_manifest.parse(content)
                except final_manifest.ManifestError as exc:
                    raise PermanentStoreError(
                        f"{manifest} cannot be followed ({exc}); no shard is deleted", code="PreconditionFailed"
                    ) from exc
                named = frozenset(
                    [s.key for s in published.shards] + ([published.compiled.key] if published.compiled else [])
                )
            # Deletes run after the compile (their edge): the manifest read once is the one they must respect.
            with self._lock:
                self._named[manifest] = named
        return key in named

    def _rehash(self, action: Action) -> None:
        store = self.stores[action.target.store]
        digest = hashlib.md5()
        with store.open(action.target.key) as body:
            # Streamed: an object of any size is hashed in CHUNK-sized pieces.
            while chunk := body.read(CHUNK):
                digest.update(chunk)
        with self._lock:
            self.bytes_downloaded += action.size
        # In-place copy records the md5; CopySourceIfMatch refuses if the object changed meanwhile.
        store.copy(
            action.target.key,
            action.target.key,
            md5=digest.hexdigest(),
            src_etag=action.precondition.source_etag,
        )

    def _copy(self, action: Action) -> None:
        assert action.source is not None
        store = self.stores[action.target.store]
        pre = action.precondition
        store.copy(
            action.source.key,
            action.target.key,
            md5=action.md5,
            src_etag=pre.source_etag,
            if_match=pre.target_etag,
            if_absent=pre.target_absent,
        )
        # A move deletes its source next: check the copy landed whole before that can happen.
        landed = store.stat(action.target.key)
        if landed is None or landed.size != action.size or (action.md5 and landed.md5 != action.md5):
            got = "nothing" if landed is None else f"{landed.size} bytes md5 {landed.md5}"
            raise PermanentStoreError(
                f"{action.kind.value} {action.source} => {action.target}: expected {action.size} bytes "
                f"md5 {action.md5}, found {got}; the source is kept",
                code="BadDigest",
                key=action.target.key,
            )
        with self._lock:
            self.bytes_copied += action.size
        if landed.md5 is None:
            # The source's md5 was unknown when planned and the server kept a non-md5 ETag on the copy
            # (AWS makes it the md5; SeaweedFS keeps a multipart one): learn it now, pinned to the copy
            # just made, instead of leaving the next plan a rehash of it.
            self._rehash(
                dataclasses.replace(
                    action, kind=ActionKind.REHASH, size=landed.size, precondition=Precondition(source_etag=landed.etag)
                )
            )
        if action.kind is ActionKind.MOVE and action.source.key.startswith(TEMP_PREFIX):
            store.delete(action.source.key)

    def _verify(self, action: Action) -> None:
        """HEAD the object: the release that follows trusts only the md5 S3 has recorded."""
        found = self.stores[action.target.store].stat(action.target.key)
        if found is None:
            raise PermanentStoreError(f"verify {action.target}: the object is missing", code="NoSuchKey")
        if found.md5 is None or found.md5 != action.md5 or found.size != action.size:
            raise PermanentStoreError(
                f"verify {action.target}: S3 records {found.size} bytes md5 {found.md5 or 'unknown'}, "
                f"the local copy is {action.size} bytes md5 {action.md5}; the local copy is kept",
                code="BadDigest",
                key=action.target.key,
            )

    def _release(self, action: Action) -> None:
        """Delete the local copy only if the exact bytes deleted are the bytes whose md5 S3 records.

        The plan's version token (If-Match) turns away a file visibly edited since the plan; the store
        then hashes the bytes it is about to delete and this HEAD must find that md5 and size in S3.
        """
        local = self.stores[action.target.store]
        remote_ref = action.source
        if remote_ref is None or not isinstance(local, ReleasingStore):
            raise PermanentStoreError(f"{action.id}: store {action.target.store!r} cannot release local files")
        remote = self.stores[remote_ref.store]

        def confirm(md5: str, size: int) -> None:
            found = remote.stat(remote_ref.key)
            if found is None or found.md5 is None or found.md5 != md5 or found.size != size:
                held = "nothing" if found is None else f"{found.size} bytes md5 {found.md5 or 'unknown'}"
                raise ObjectChanged(
                    f"release {action.target}: the local file is {size} bytes md5 {md5}, {remote_ref} holds {held}",
                    code="BadDigest",
                    key=action.target.key,
                )

        local.release(action.target.key, if_match=action.precondition.target_etag, confirm=confirm)


class _CountingReader:
    """A source stream that reports how much was read; everything else (seek, tell, ...) is the stream's."""

    def __init__(self, stream: BinaryIO, report: Callable[[int], None]) -> None:
        self._stream = stream
        self._report = report

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if data:
            self._report(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        count = self._stream.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self._report(int(count))
        return int(count or 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def build_runner(
    desired: Desired, stores: Mapping[str, Store], on_bytes: Callable[[Action, int], None] | None = None
) -> ActionRunner:
    """The runner every executor uses, on this machine or on a cluster's worker: the same code either way."""
    return ActionRunner(
        stores,
        manifests=ManifestWriter(desired, stores),
        on_bytes=on_bytes,
        compiler=FinalCompiler(desired, stores),
    )
