"""Apply-time half of a record-index node: read the dataset's object, check its md5, build the index, create it.

The index is built in one pass over the object's bytes (loader/index.py, the
loader's own builder, so the loader reads exactly what it would have built)
and kept only when those bytes hash to the md5 the plan pinned: spans hashed
from other bytes would vouch for records nobody checked. It is created with
If-None-Match: the key is the md5's, so whatever is already there was built
from the same bytes or was not written by pixel, and either way is not
overwritten (the registry records the digest of what is there; the loader
trusts nothing else).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping

from reconciler.loader.formats import CHUNK, RecordFormat
from reconciler.loader.index import build, splits
from reconciler.model import Action
from reconciler.stores.base import ObjectChanged, PermanentStoreError, Store


def index_bytes(store: Store, key: str, fmt: RecordFormat, md5: str) -> bytes:
    """The index of the object at `key` as JSON, built from bytes whose md5 is `md5` (ObjectChanged otherwise)."""
    entry = store.stat(key)
    if entry is None:
        raise ObjectChanged(f"record index: {key} is gone since the plan", key=key)
    with store.open(key, if_match=entry.etag) as stream:
        index = build(stream, key=key, fmt=fmt, split=splits(fmt, entry.size))
    if index.md5 != md5:
        raise ObjectChanged(f"record index: {key} holds md5 {index.md5} now, the plan indexed {md5}", key=key)
    return json.dumps(index.to_json(), separators=(",", ":")).encode()


def _holds(store: Store, key: str, content: bytes) -> bool:
    """Whether the object at `key` is `content`, read no further than one byte past its length."""
    got = bytearray()
    with store.open(key) as there:
        while len(got) <= len(content) and (chunk := there.read(CHUNK)):
            got += chunk
    return bytes(got) == content


def write_record_index(stores: Mapping[str, Store], action: Action) -> bool:
    """Whether it wrote the index (False: the same bytes were there already)."""
    source, md5 = action.source, action.precondition.source_md5
    if source is None or md5 is None:
        raise PermanentStoreError(f"write-manifest {action.target}: a record index needs its object and md5",
                                  key=action.target.key)
    fmt = RecordFormat(action.target.key.rsplit(".", 2)[-2])
    store = stores[action.target.store]
    content = index_bytes(stores[source.store], source.key, fmt, md5)
    if store.stat(action.target.key) is not None:
        if _holds(store, action.target.key, content):
            return False  # written by an earlier apply (killed before the registry recorded it?)
        raise PermanentStoreError(
            f"write-manifest {action.target}: holds a record index pixel did not build from these bytes; "
            "left as it is (delete it to have it built again)",
            key=action.target.key,
        )
    store.write(
        action.target.key,
        lambda: io.BytesIO(content),
        size=len(content),
        md5=hashlib.md5(content).hexdigest(),
        if_absent=True,
    )
    return True
