"""The work behind each action kind, against the Store protocol."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping

from reconciler.model import Action, ActionKind
from reconciler.stores.base import ObjectChanged, PermanentStoreError, Store

CHUNK = 8 * 1024 * 1024


class ActionRunner:
    """Callable the executor runs per action. Counts bytes moved, for the summary and the tests."""

    def __init__(self, stores: Mapping[str, Store]) -> None:
        self.stores = stores
        self._lock = threading.Lock()
        self.bytes_uploaded = 0
        self.bytes_downloaded = 0

    def __call__(self, action: Action) -> None:
        handler = {
            ActionKind.UPLOAD: self._transfer,
            ActionKind.DOWNLOAD: self._transfer,
            ActionKind.DELETE: self._delete,
            ActionKind.REHASH: self._rehash,
        }.get(action.kind)
        if handler is None:
            raise PermanentStoreError(f"{action.id}: no runner for action kind {action.kind.value}")
        handler(action)

    def _transfer(self, action: Action) -> None:
        assert action.source is not None
        source = self.stores[action.source.store]
        target = self.stores[action.target.store]
        pre = action.precondition
        current = source.stat(action.source.key)
        if current is None:
            raise ObjectChanged(
                f"{action.source} disappeared since the plan was made", code="412", key=action.source.key
            )
        if pre.source_etag is not None and current.etag != pre.source_etag:
            raise ObjectChanged(
                f"{action.source} changed since the plan was made (size/mtime or ETag differs); re-run pixel plan",
                code="412",
                key=action.source.key,
            )
        target.write(
            action.target.key,
            lambda: source.open(action.source.key),  # type: ignore[union-attr]
            size=action.size,
            md5=action.md5,
            if_match=pre.target_etag,
            if_absent=pre.target_absent,
        )
        with self._lock:
            if action.kind is ActionKind.UPLOAD:
                self.bytes_uploaded += action.size
            else:
                self.bytes_downloaded += action.size

    def _delete(self, action: Action) -> None:
        self.stores[action.target.store].delete(action.target.key, if_match=action.precondition.target_etag)

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
