"""A dict as a Store, honouring the same preconditions as S3.

Used by the property tests (apply a plan, re-plan, expect nothing) and by the
million-object planner benchmark. Objects written with `foreign=True` look
like a multipart upload by another tool: their md5 is unknown until rehashed.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

from reconciler.model import Entry, S3StoreSpec
from reconciler.stores.base import ConfirmHeld, ObjectChanged, OpenSource, PermanentStoreError, check_precondition

_versions = itertools.count(1)


@dataclass(frozen=True, slots=True)
class _Object:
    data: bytes
    etag: str
    md5_known: bool


class MemoryStore:
    def __init__(self, name: str, spec: S3StoreSpec | None = None) -> None:
        """With `spec`, lists like an S3Store of that spec: pixel's own space (the lock, scratch) left out."""
        self.name = name
        self.spec = spec
        self._objects: dict[str, _Object] = {}
        self._lock = threading.Lock()
        self.bytes_written = 0

    def put(self, key: str, data: bytes, *, foreign: bool = False) -> None:
        """Set an object directly, as if another tool had written it."""
        md5 = hashlib.md5(data).hexdigest()
        etag = f"{md5[:24]}{next(_versions):08x}-2" if foreign else md5
        self._objects[key] = _Object(data, etag, not foreign)

    def get(self, key: str) -> bytes:
        return self._objects[key].data

    def keys(self) -> list[str]:
        return sorted(self._objects)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def _entry(self, key: str, obj: _Object) -> Entry:
        md5 = hashlib.md5(obj.data).hexdigest() if obj.md5_known else None
        return Entry(key=key, size=len(obj.data), md5=md5, etag=obj.etag)

    def list(self, prefix: str) -> Iterator[Entry]:
        with self._lock:
            items = sorted((k, o) for k, o in self._objects.items() if k.startswith(prefix))
        for key, obj in items:
            if self.spec is not None and self.spec.reserves(key):
                continue
            yield self._entry(key, obj)

    def stat(self, key: str) -> Entry | None:
        obj = self._objects.get(key)
        return None if obj is None else self._entry(key, obj)

    def open(self, key: str, *, if_match: str | None = None) -> AbstractContextManager[BinaryIO]:
        obj = self._objects.get(key)
        if obj is None:
            raise PermanentStoreError(f"{self.name}:{key} does not exist", code="NoSuchKey", key=key)
        if if_match is not None and self._entry(key, obj).etag != if_match:
            raise ObjectChanged(f"{self.name}:{key} changed since it was looked at", code="412", key=key)
        return io.BytesIO(obj.data)

    def _check(self, key: str, if_match: str | None, if_absent: bool) -> None:
        held = None if (current := self._objects.get(key)) is None else current.etag
        check_precondition(self.name, key, held, if_match=if_match, if_absent=if_absent, code="PreconditionFailed")

    def write(
        self, key: str, source: OpenSource, *, size: int, md5: str | None, if_match: str | None = None,
        if_absent: bool = False,
    ) -> Entry:
        with source() as src:
            data = src.read()
        real = hashlib.md5(data).hexdigest()
        if len(data) != size or (md5 is not None and real != md5):
            raise PermanentStoreError(
                f"{self.name}:{key}: body does not match its md5", code="BadDigest", key=key
            )
        with self._lock:
            self._check(key, if_match, if_absent)
            obj = _Object(data, real, True)
            self._objects[key] = obj
            self.bytes_written += size
        return self._entry(key, obj)

    def copy(
        self, src_key: str, dst_key: str, *, md5: str | None, src_etag: str | None = None,
        if_match: str | None = None, if_absent: bool = False,
    ) -> Entry:
        with self._lock:
            src = self._objects.get(src_key)
            if src is None or (src_etag is not None and src.etag != src_etag):
                raise ObjectChanged(f"{self.name}:{src_key} changed", code="PreconditionFailed", key=src_key)
            self._check(dst_key, if_match, if_absent)
            real = hashlib.md5(src.data).hexdigest()
            if md5 is not None and md5 != real:
                raise PermanentStoreError(
                    f"{self.name}:{src_key}: md5 mismatch", code="BadDigest", key=src_key
                )
            # A metadata-replacing copy records the md5, as CopyObject does on S3.
            obj = _Object(src.data, real if md5 is not None else src.etag, md5 is not None or src.md5_known)
            self._objects[dst_key] = obj
        return self._entry(dst_key, obj)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        with self._lock:
            self._check(key, if_match, False)
            self._objects.pop(key, None)

    def release(self, key: str, *, if_match: str | None, confirm: ConfirmHeld) -> None:
        with self._lock:
            self._check(key, if_match, False)
            obj = self._objects.get(key)
            if obj is None:
                raise ObjectChanged(f"{self.name}:{key} vanished before its release", code="412", key=key)
            confirm(hashlib.md5(obj.data).hexdigest(), len(obj.data))
            del self._objects[key]
