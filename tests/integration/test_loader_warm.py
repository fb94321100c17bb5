"""A warm epoch over shards on SeaweedFS (issue 25, warm25): one listing of the prefix and no other request, the
cached copies read whole, and a copy changed on disk since it was cached fetched again rather than served."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.loader import load_dataset
from reconciler.loader.dataset import StreamingDataset
from tests.faults.proxy import FaultProxy
from tests.integration.test_loader import PROCESSED, jsonl, rows, write_world_specs

pytestmark = pytest.mark.integration

SHARDS = 5


class RequestLog(FaultProxy):
    """Forwards everything and notes each request: (method, whether it is a listing, the key's last part)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, [])
        self.seen: list[tuple[str, bool, str]] = []
        self._lock = threading.Lock()

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        with self._lock:
            self.seen.append((method, "list-type" in path, path.split("?")[0].rsplit("/", 1)[-1]))
        return super()._forward(method, path, headers, body)


@pytest.fixture
def shards(tmp_path: Path, seaweed: Any, bucket: str, aws_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    client = seaweed.client()
    for i in range(SHARDS):
        body = jsonl(rows(f"s{i}", 40))
        client.put_object(Bucket=bucket, Key=f"{PROCESSED}cot_reasoning/shard-{i}.jsonl", Body=body,
                          Metadata={"md5": hashlib.md5(body).hexdigest()})
    proxy = RequestLog(seaweed.endpoint)
    with proxy:
        specs = write_world_specs(tmp_path / "specs", endpoint=proxy.endpoint, bucket=bucket)
        yield {"specs": specs, "cache": tmp_path / "cache", "proxy": proxy}


def read(world: dict[str, Any]) -> tuple[StreamingDataset, list[str]]:
    ds = load_dataset("cot_reasoning/shard-*.jsonl", world["specs"], cache_dir=world["cache"])
    world["proxy"].seen.clear()  # resolution's own listing is not the epoch's
    return ds, [r["id"] for r in ds]


def test_a_warm_epoch_over_shards_lists_the_prefix_once_and_reads_nothing_else(shards: dict[str, Any]) -> None:
    _, expected = read(shards)
    assert expected == [f"s{i}-{j}" for i in range(SHARDS) for j in range(40)]
    assert sorted(method for method, _, _ in shards["proxy"].seen) == ["GET"] * SHARDS  # one GET a shard, no HEAD
    warm, got = read(shards)
    assert got == expected
    assert shards["proxy"].seen == [("GET", True, "")]  # one listing of cot_reasoning/, no HEAD, no GET of a shard
    assert warm.cache is not None and (warm.cache.hits, warm.cache.downloads, warm.cache.rehashed) == (SHARDS, 0, 0)
    again = [r["id"] for r in warm]  # the next epoch of the same dataset lists again
    assert again == expected and shards["proxy"].seen == [("GET", True, "")] * 2


def test_a_cached_shard_changed_on_disk_is_fetched_again_and_none_of_its_bytes_served(
    shards: dict[str, Any],
) -> None:
    cold, expected = read(shards)
    obj = cold.objects[2]
    assert cold.cache is not None and obj.md5 is not None
    copy = cold.cache.path(obj.md5)
    forged = copy.read_bytes().replace(b'"s2-', b'"XX-')
    assert len(forged) == copy.stat().st_size
    fd = os.open(copy, os.O_WRONLY)  # in place: same inode and size, other bytes (its ctime moves)
    try:
        os.write(fd, forged)
    finally:
        os.close(fd)
    warm, got = read(shards)
    assert got == expected
    assert warm.cache is not None and (warm.cache.rehashed, warm.cache.dropped, warm.cache.downloads) == (1, 1, 1)
    assert sorted(shards["proxy"].seen) == [("GET", False, "shard-2.jsonl"), ("GET", True, "")]
    assert copy.read_bytes() != forged  # the copy kept now is the object's again
