"""A cold lone read's first record needs only the index's first span from SeaweedFS (issue 25, idx25).

SeaweedFS keeps an object in 4 MiB chunks and pauses between them (0.06-1.3 s measured, for any reader): a first
span of 4 MiB and a line crossed that boundary before its first record could be verified. With the real
constants, the first span is the object's first MiB at most, and this is what the reader must have taken from
the server before its first record. Counted, not timed: the body stops giving bytes after the first span, so a
reader that needed one byte more could not yield a record at all.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.loader import index
from reconciler.loader.cache import ObjectCache
from reconciler.loader.dataset import StreamingDataset
from reconciler.loader.resolve import resolve
from reconciler.loader.storeset import StoreSet
from reconciler.spec import load_desired
from reconciler.stores.base import PermanentStoreError
from tests.integration.test_loader import PROCESSED, write_world_specs
from tests.integration.test_loader_ranks import ReadCounting

pytestmark = pytest.mark.integration

RECORDS = 40_000  # 9 MiB: two SeaweedFS chunk boundaries


def test_the_first_record_of_a_cold_lone_read_needs_only_the_first_span(
    tmp_path: Path, seaweed: Any, bucket: str, aws_env: dict[str, str]
) -> None:
    body = b"".join(json.dumps({"id": i, "text": "lorem ipsum " * 18}).encode() + b"\n" for i in range(RECORDS))
    assert len(body) > 2 * index.SPAN_BYTES
    key = f"{PROCESSED}cot_reasoning/big.jsonl"
    seaweed.client().put_object(Bucket=bucket, Key=key, Body=body, Metadata={"md5": hashlib.md5(body).hexdigest()})
    specs = write_world_specs(tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket)
    desired = load_desired(specs, {})
    stores = StoreSet(desired.stores)
    objects = resolve(desired, stores, "big.jsonl").objects
    built = index.build(io.BytesIO(body), key=key, fmt=objects[0].fmt, split=True)
    index.IndexStore(tmp_path / "indexes").put(built, objects[0].fmt)
    first = built.spans[0]
    assert first.start == 0 and first.stop <= index.FIRST_SPAN_BYTES and first.records > 0

    gated = ReadCounting(stores[objects[0].store], allowed=first.stop)
    ds = StreamingDataset(objects, {objects[0].store: gated}, cache=ObjectCache(tmp_path / "cache"),
                          index_dir=tmp_path / "indexes", worker_info=lambda: None)
    records = iter(ds)
    got = [next(records)["id"] for _ in range(first.records)]  # every record of the first span
    assert got == list(range(first.records))
    assert gated.taken == first.stop  # all the server gave; the next span then finds the body ended
    with pytest.raises(PermanentStoreError, match="SHA-256"):
        next(records)
