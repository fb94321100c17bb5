"""The S3 listing of a mapping starts before its local tree is walked: its first page is on the way meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import pytest

from reconciler.model import Authority, Desired, Entry, LocalStoreSpec, MappingSpec, S3StoreSpec
from reconciler.observe import StreamingHasher, observe
from reconciler.stores.memory import MemoryStore

HOLD_S = 10.0  # a bound on the walk's wait, never waited out when the listing goes first


class WalkAwaitingTheListing(MemoryStore):
    """A local tree whose walk ends once the S3 listing has been asked (or HOLD_S later), and says which."""

    def __init__(self, name: str, asked: threading.Event) -> None:
        super().__init__(name)
        self.asked = asked
        self.asked_during_walk: bool | None = None

    def list(self, prefix: str) -> Iterator[Entry]:
        yield from super().list(prefix)
        self.asked_during_walk = self.asked.wait(HOLD_S)


class Bucket(MemoryStore):
    """A store listed in ranges cut at the keys it should hold (as S3Store is), that says when it is asked."""

    def __init__(self, name: str, asked: threading.Event) -> None:
        super().__init__(name)
        self.asked = asked
        self.expected: list[str] = []

    def list(self, prefix: str) -> Iterator[Entry]:
        self.asked.set()
        yield from super().list(prefix)

    def list_expecting(self, prefix: str, known: Iterable[str]) -> Iterator[Entry]:
        self.asked.set()
        self.expected = sorted(known)  # read after the first request, as S3Store cuts its ranges
        yield from super().list(prefix)


@pytest.mark.parametrize("authority", [Authority.LOCAL, Authority.S3])
def test_the_listing_is_asked_while_the_local_tree_is_walked(authority: Authority) -> None:
    desired = Desired(
        stores={"disk": LocalStoreSpec("disk", "/nowhere"), "s3": S3StoreSpec("s3", "bucket")},
        mappings=(MappingSpec("m", "disk", "src", "s3", "pre/", authority=authority),),
    )
    asked = threading.Event()
    disk, s3 = WalkAwaitingTheListing("disk", asked), Bucket("s3", asked)
    for name in ("a", "b/c", "d"):
        disk.put(f"src/{name}", name.encode())
    s3.put("pre/a", b"a")
    s3.put("pre/z", b"z")
    seen = observe(desired, {"disk": disk, "s3": s3}, StreamingHasher()).mappings["m"]
    assert disk.asked_during_walk is True
    assert sorted(seen.local) == ["a", "b/c", "d"] and sorted(seen.remote) == ["a", "z"]
    assert seen.local["a"].md5 == seen.remote["a"].md5
    # Push: the ranges are cut at the keys the walk found, whole, once it ended.
    assert s3.expected == (["pre/a", "pre/b/c", "pre/d"] if authority is Authority.LOCAL else [])


class BrokenWalk(MemoryStore):
    def list(self, prefix: str) -> Iterator[Entry]:
        raise RuntimeError("the walk broke")
        yield  # a generator, as a store's listing is


def test_a_walk_that_breaks_stops_the_listing_waiting_on_it() -> None:
    desired = Desired(
        stores={"disk": LocalStoreSpec("disk", "/nowhere"), "s3": S3StoreSpec("s3", "bucket")},
        mappings=(MappingSpec("m", "disk", "src", "s3", "pre/"),),
    )
    s3 = Bucket("s3", threading.Event())
    s3.put("pre/a", b"a")
    with pytest.raises(RuntimeError, match="the walk broke"):
        observe(desired, {"disk": BrokenWalk("disk"), "s3": s3}, StreamingHasher())
