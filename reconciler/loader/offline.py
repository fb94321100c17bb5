"""Reading from the verified cache without S3: `offline=True`, or S3 unreachable.

What may be read without S3 is what is pinned without S3: an object whose md5 is
known from a file on local disk, and whose copy in the cache has that md5.

- Resolution offline reads local files only: the dataset registry
  (`datasets.registry`, md5 and size of each canonical object as of the last
  apply) for a registered name, and the final dataset's kept local manifest
  (`final_dataset.manifest_local`) for `final_dataset`. A file name, a shard
  pattern or `store:key` needs a listing or a HEAD: refused offline, with the
  reason.
- Reading offline takes the cache's checked copy (reconciler/loader/cache.py:
  recorded identity, else the md5 of the whole file); a cold object is one
  error naming it. With offline=True S3 is never contacted.
- Without offline=True, S3 is tried first; when it does not answer (a transient
  error after the retry layer's attempts: no connection, 5xx, throttling) an
  object with a pinned md5 and a verified copy is served from the cache with a
  warning, and the rest of that pass does not wait for S3 again. An object read
  halfway is not switched over: reads hand nothing on before the whole object
  is verified, so a failure comes before the first record. (A lone reader
  streaming an indexed object span by span fails at the span S3 stopped in;
  the spans before it were each verified.)
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, BinaryIO, cast

from reconciler.loader.cache import ObjectCache
from reconciler.loader.formats import CHUNK, Prefixed, format_of
from reconciler.loader.resolve import FINAL_DATASET, DatasetNotFound, Resolved, SourceObject, final_from_manifest
from reconciler.logs import get_logger
from reconciler.model import Desired, ObjectRef, S3StoreSpec
from reconciler.stores.base import Store, StoreError, TransientStoreError

UNREACHABLE = "S3 is unreachable"  # how a warning of this module begins


class OfflineWarning(UserWarning):
    """Records are served from the verified cache because S3 did not answer."""


class NotCachedOffline(StoreError):
    """An object needed while S3 is not used (offline) or not answering has no verified copy in the cache."""


def _read_local(desired: Desired, stores: Mapping[str, Store], ref: ObjectRef, what: str, name: str) -> bytes:
    if isinstance(desired.stores.get(ref.store), S3StoreSpec):
        raise DatasetNotFound(name, f"offline: {what} is in S3 ({ref}), so it cannot be read without S3")
    store = stores[ref.store]
    if store.stat(ref.key) is None:
        raise DatasetNotFound(name, f"offline: there is no {what} at {ref} (run pixel apply once online)")
    with store.open(ref.key) as body:
        return body.read()


def resolve_offline(
    desired: Desired, stores: Mapping[str, Store], name: str, *, category: str | None = None,
    split: str | None = None,
) -> Resolved:
    """The objects of `name` from local files only: the registry, or the final dataset's kept manifest."""
    if name == FINAL_DATASET:
        final = desired.final
        if final is None:
            raise DatasetNotFound(name, "no final dataset is declared in the specs")
        content = _read_local(desired, stores, final.manifest_local, "the final dataset's kept manifest", name)
        return final_from_manifest(final, content, split)
    registered = next((d for d in desired.datasets if d.name == name), None)
    if registered is None:
        raise DatasetNotFound(
            name,
            "offline, only registered datasets (pinned by the registry's md5) and final_dataset (by its kept "
            "manifest) can be resolved: a file name, a pattern or store:key needs S3",
        )
    if desired.registry is None:
        raise DatasetNotFound(name, "offline: the specs declare no dataset registry to find its md5 in")
    content = _read_local(desired, stores, desired.registry, "the dataset registry", name)
    try:
        row: Any = json.loads(content)["datasets"][name]
        md5, size = row["md5"], row["size_bytes"]
    except (ValueError, KeyError, TypeError):
        raise DatasetNotFound(name, f"offline: the dataset registry {desired.registry} has no entry for it") from None
    if not isinstance(md5, str) or not isinstance(size, int):
        raise DatasetNotFound(
            name, f"offline: the dataset registry records no md5 for it (status {row.get('status')!r})"
        )
    obj = SourceObject(registered.store, registered.key, md5, size, format_of(registered.key, registered.format))
    return Resolved(name, (obj,), registered.tier, (), registered)


class OfflineReads:
    """One dataset's reads without S3: always (offline), or after S3 stopped answering in this pass."""

    def __init__(self, offline: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.offline = offline
        self.down_since: float | None = None  # S3 did not answer in this pass: do not wait for it again
        self._clock = clock
        self._warned = False

    def new_pass(self) -> None:
        """Each pass (epoch) tries S3 again: it may be back."""
        self.down_since = None

    @contextlib.contextmanager
    def open(
        self,
        obj: SourceObject,
        cache: ObjectCache | None,
        online: Callable[[], AbstractContextManager[BinaryIO]],
    ) -> Iterator[BinaryIO]:
        """`online()` (the object from S3, verified), or the verified cached copy when S3 is not to be used or
        did not answer; NotCachedOffline when there is none."""
        label = f"{obj.store}:{obj.key}"
        if self.offline or self.down_since is not None:
            with self._cached(obj, cache, label, "offline" if self.offline else UNREACHABLE) as stream:
                yield stream
            return
        stack = contextlib.ExitStack()
        try:
            stream = stack.enter_context(online())
            # The first read fetches and verifies the whole object (nothing is handed on before): a failure
            # to reach S3 shows here, before any record, where the cached copy can still stand in. A verified
            # file (a cache hit, a spool) is put back where it began: wrapped to give that byte back instead, a
            # warm pass over 1 MiB shards copied each object's first MiB once more and read it in pieces.
            start = _position(stream)
            head = stream.read(1)
            if start is not None:
                stream.seek(start)
        except TransientStoreError as exc:
            stack.close()
            if obj.md5 is None or cache is None:
                raise
            self.down_since = self._clock()
            with self._cached(obj, cache, label, f"{UNREACHABLE} ({exc})") as cached_stream:
                yield cached_stream
            return
        except BaseException:
            stack.close()
            raise
        with stack:
            yield stream if start is not None else cast(BinaryIO, Prefixed(head, stream))

    def span(
        self,
        key: str,
        md5: str,
        size: int,
        cache: ObjectCache | None,
        fetch: Callable[[], bytes],
        *,
        label: str,
    ) -> bytes:
        """A span's verified bytes: `fetch()` (from S3, it verifies them against `md5`), or the span's verified
        copy in the cache when S3 is not to be used or did not answer; NotCachedOffline when there is none.

        A span is read whole before any of its records is used, so a failure comes before the first of them."""
        if self.offline or self.down_since is not None:
            with self.cached(md5, size, cache, label=label, key=key,
                             why="offline" if self.offline else UNREACHABLE) as stream:
                return read_all(stream)
        try:
            return fetch()
        except TransientStoreError as exc:
            if cache is None:
                raise
            self.down_since = self._clock()
            with self.cached(md5, size, cache, label=label, key=key, why=f"{UNREACHABLE} ({exc})") as stream:
                return read_all(stream)

    @contextlib.contextmanager
    def _cached(self, obj: SourceObject, cache: ObjectCache | None, label: str, why: str) -> Iterator[BinaryIO]:
        with self.cached(obj.md5, obj.size, cache, label=label, key=obj.key, why=why) as stream:
            yield stream

    @contextlib.contextmanager
    def cached(
        self, md5: str | None, size: int | None, cache: ObjectCache | None, *, label: str, key: str, why: str
    ) -> Iterator[BinaryIO]:
        """The verified cached copy of `md5` (warning once per dataset when S3 did not answer), else
        NotCachedOffline naming `label`."""
        hit = cache.use(md5, size, label=label) if cache is not None and md5 is not None else None
        if hit is None:
            pinned = "no verified copy in the cache" if md5 is not None else "no md5 known without S3"
            raise NotCachedOffline(f"{label}: {why}, and there is {pinned} to read instead", key=key)
        if not self.offline:
            get_logger("pixel.loader").warning("S3 unreachable; serving the verified cached copy", object=label)
            if not self._warned:
                self._warned = True
                warnings.warn(f"{why}: serving verified cached copies, starting with {label}", OfflineWarning,
                              stacklevel=4)
        with hit:
            yield hit


def _position(stream: BinaryIO) -> int | None:
    """Where a seekable stream stands, else None (a body off the socket)."""
    try:
        return stream.tell() if stream.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


def read_all(stream: BinaryIO) -> bytes:
    parts = []
    while data := stream.read(CHUNK):
        parts.append(data)
    return b"".join(parts)
