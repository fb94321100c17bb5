"""A span is checked by the SHA-256 its index gives it, never by its md5 alone (issue 25, idx25).

The md5 of each span stays in the index as the name the cache keeps the span under; what a span read must match
before any of its records is used is the SHA-256. Emulated here by an index whose md5 for one span is that of the
bytes the store serves and whose SHA-256 is that of other bytes: an md5 collision, to the reader.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from unittest import mock

import pytest

from reconciler.loader import index
from reconciler.loader.cache import ObjectCache
from reconciler.loader.dataset import StreamingDataset
from reconciler.loader.formats import RecordFormat
from reconciler.loader.index import IndexStore, RecordIndex, build
from reconciler.loader.resolve import SourceObject
from reconciler.stores.base import PermanentStoreError
from reconciler.stores.memory import MemoryStore


def forged(tmp_path: Path) -> tuple[MemoryStore, SourceObject, RecordIndex, Path]:
    store = MemoryStore("mem")
    body = b"".join(json.dumps({"id": j}).encode() + b"\n" for j in range(60))
    store.put("big.jsonl", body)
    entry = store.stat("big.jsonl")
    assert entry is not None and entry.md5 is not None
    obj = SourceObject("mem", "big.jsonl", entry.md5, entry.size, RecordFormat.JSONL)
    built = build(store.open("big.jsonl"), key=obj.key, fmt=obj.fmt, split=True)  # type: ignore[arg-type]
    assert len(built.spans) > 4
    bad = built.spans[1]
    assert bad.md5 == hashlib.md5(body[bad.start : bad.stop]).hexdigest()  # the md5 matches what is served
    spans = list(built.spans)
    spans[1] = dataclasses.replace(bad, sha256=hashlib.sha256(b"other bytes").hexdigest())
    kept = RecordIndex(built.md5, built.size, built.records, tuple(spans))
    IndexStore(tmp_path / "idx").put(kept, obj.fmt)
    return store, obj, kept, tmp_path / "idx"


@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize("world", [1, 2])
def test_a_span_whose_md5_matches_but_whose_sha256_does_not_is_never_yielded(
    tmp_path: Path, cached: bool, world: int
) -> None:
    """world 1: the lone reader's one GET handed on span by span; world 2: rank 0 reads its spans by range."""
    with mock.patch.object(index, "SPAN_BYTES", 100), mock.patch.object(index, "FIRST_SPAN_BYTES", 100):
        read_forged(tmp_path, cached, world)


def read_forged(tmp_path: Path, cached: bool, world: int) -> None:
    store, obj, kept, index_dir = forged(tmp_path)
    cache = ObjectCache(tmp_path / "cache") if cached else None
    ds = StreamingDataset([obj], {"mem": store}, worker_info=lambda: None, cache=cache, rank=0, world_size=world,
                          index_dir=index_dir)
    got: list[int] = []
    with pytest.raises(PermanentStoreError, match=r"big.jsonl bytes \d+-\d+.*SHA-256"):
        for record in ds:
            got.append(record["id"])
    assert got == list(range(kept.spans[0].records))  # nothing of the span that failed
    if cache is not None:
        cache.settle()
        # Neither the object nor the span is kept: a later read would otherwise take the copy as checked.
        assert cache.use(kept.md5, kept.size) is None
        assert cache.use(kept.spans[1].md5, kept.spans[1].stop - kept.spans[1].start) is None
