"""Whether S3 still holds the version of an object the dataset was resolved to: one listing per prefix per pass.

A read served from the verified cache is the pinned md5's bytes, but a dataset
whose object changed in S3 since it was resolved is refused (DatasetChanged)
rather than served the old version unannounced. Asking with a HEAD per object
cost one request per shard on every warm epoch: with the bytes local, that was
most of a warm pass over 1,000 small shards. So objects that share a prefix
(shards: at least SHARED of the dataset's objects in one "directory") are
looked up in one listing of that prefix per pass (epoch); an object alone under
its prefix (a registered dataset) keeps its HEAD, since listing its directory
could cost more than the one request.

A listed entry decides when it can: its md5 (a single-part ETag) is compared
with the pinned one by the caller, and an entry without md5 (a multipart
ETag) vouches for the version when its ETag is the one seen at resolution;
else the HEAD decides (its md5 from metadata). A key missing from a complete
listing is gone. Each pass lists again: an object changed between two epochs
is refused in the second.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from reconciler.loader.resolve import SourceObject
from reconciler.model import Entry
from reconciler.stores.base import Store

SHARED = 2  # objects of a dataset under one prefix for it to be listed instead of HEADed one by one


def prefix_of(key: str) -> str:
    return key.rsplit("/", 1)[0] + "/" if "/" in key else ""


class Listings:
    """The current entries of a dataset's objects, by one listing per shared prefix, made at most once a pass."""

    def __init__(self, objects: Sequence[SourceObject]) -> None:
        counts = Counter((o.store, prefix_of(o.key)) for o in objects)
        self._shared = frozenset(where for where, n in counts.items() if n >= SHARED)
        self._listed: dict[tuple[str, str], dict[str, Entry]] = {}
        self._lock = threading.Lock()
        self.listings = 0  # listings made (all passes): what a warm pass costs in requests

    def __getstate__(self) -> dict[str, Any]:
        # A DataLoader worker lists for itself: what this process listed may be an epoch old.
        return {"_shared": self._shared}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._shared = state["_shared"]
        self._listed = {}
        self._lock = threading.Lock()
        self.listings = 0

    def new_pass(self) -> None:
        """The next pass asks S3 again: an object may have changed since this one listed it."""
        with self._lock:
            self._listed = {}

    def current(self, obj: SourceObject, store: Store) -> Entry | None:
        """The object as S3 holds it now (None: gone): from this pass's listing of its prefix, else a HEAD."""
        where = (obj.store, prefix_of(obj.key))
        if where not in self._shared:
            return store.stat(obj.key)
        with self._lock:  # the object opened ahead on a helper thread asks too: one listing for both
            listed = self._listed.get(where)
            if listed is None:
                listed = {entry.key: entry for entry in store.list(where[1])}
                self._listed[where] = listed
                self.listings += 1
        entry = listed.get(obj.key)
        if entry is None or entry.md5 is not None or (obj.etag is not None and entry.etag == obj.etag):
            return entry
        return store.stat(obj.key)  # a multipart ETag not seen at resolution: its md5 is in the HEAD only
