"""Laws of the range-split listing (stores/s3/listing.py) against an in-memory ListObjectsV2, both orders."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.stores.s3 import listing as s3_listing
from reconciler.stores.s3.listing import Order, Page, byte_order, tree_order

PAGE = 3  # tiny pages: every range spans several, and cuts fall inside pages


class FakeBucket:
    """ListObjectsV2 over a key set: `order` is the server's; `skips_subtree` is SeaweedFS's StartAfter."""

    def __init__(self, keys: set[str], order: Order, skips_subtree: bool) -> None:
        self.keys = sorted(keys, key=order)
        self.order = order
        self.skips_subtree = skips_subtree
        self.requests = 0

    def pages(self, prefix: str, start_after: str | None, delimiter: str | None) -> Iterator[Page]:
        self.requests += 1
        items: list[tuple[str, bool]] = []  # (key or common prefix, is a prefix)
        for key in self.keys:
            if not key.startswith(prefix):
                continue
            if start_after is not None:
                if self.order(key) <= self.order(start_after):
                    continue
                if self.skips_subtree and key.startswith(start_after + "/"):
                    continue
            rest = key[len(prefix) :]
            if delimiter and delimiter in rest:
                group = prefix + rest[: rest.index(delimiter) + 1]
                if not items or items[-1] != (group, True):
                    items.append((group, True))
            else:
                items.append((key, False))
        for start in range(0, max(len(items), 1), PAGE):
            chunk = items[start : start + PAGE]
            yield {
                "Contents": [{"Key": k, "Size": len(k)} for k, is_group in chunk if not is_group],
                "CommonPrefixes": [{"Prefix": k} for k, is_group in chunk if is_group],
                "IsTruncated": start + PAGE < len(items),
            }


def keys_of(pages: Iterator[Page]) -> list[str]:
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


NAMES = st.text(alphabet="ab/ -.0", min_size=1, max_size=6).filter(lambda k: "//" not in k and not k.startswith("/"))
SERVERS = st.sampled_from([(byte_order, False), (tree_order, False), (tree_order, True)])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    keys=st.sets(NAMES.map(lambda k: "p/" + k), max_size=40),
    others=st.sets(NAMES, max_size=5),
    known=st.lists(NAMES.map(lambda k: "p/" + k), max_size=30),
    every=st.integers(1, 5),
    workers=st.integers(1, 4),
    server=SERVERS,
)
# A cut inside another cut's subtree once listed that part of the subtree twice in tree order.
@example(keys={"p/./0"}, others=set(), known=["p/.", "p/./"], every=1, workers=1, server=(tree_order, False))
def test_range_listing_gives_the_sequential_listing(
    keys: set[str], others: set[str], known: list[str], every: int, workers: int, server: tuple[Order, bool]
) -> None:
    order, skips = server
    bucket = FakeBucket(keys | others, order, skips)
    sequential = keys_of(bucket.pages("p/", None, None))
    cuts = s3_listing.boundaries(known, every)
    parts = s3_listing.split("p/", cuts, order)
    by_hand = [key for part in parts for key in sequential if part.holds(key)]
    assert by_hand == sequential  # the ranges partition the keys, in the server's order
    listed = s3_listing.listing(bucket.pages, "p/", known=known, workers=workers, order=order)
    assert keys_of(listed) == sequential
    by_directory = s3_listing.listing(bucket.pages, "p/", known=None, workers=workers, order=order)
    assert keys_of(by_directory) == sequential


def test_many_ranges_on_few_workers_are_yielded_in_order() -> None:
    keys = {f"p/{i:05d}" for i in range(5_000)}
    bucket = FakeBucket(keys, byte_order, False)
    listed = keys_of(s3_listing.listing(bucket.pages, "p/", known=sorted(keys, reverse=True), workers=2))
    assert listed == sorted(keys)


def test_a_failing_range_raises_in_the_consumer() -> None:
    def pages(prefix: str, start_after: str | None, delimiter: str | None) -> Iterator[Page]:
        if start_after is not None:
            raise OSError("connection reset")
        yield {"Contents": [{"Key": "p/a"}], "IsTruncated": True}

    listed = s3_listing.listing(pages, "p/", known=[f"p/{i}" for i in range(3000)], workers=3)
    try:
        keys_of(listed)
    except OSError as exc:
        assert "reset" in str(exc)
    else:
        raise AssertionError("the failure of a range was swallowed")
