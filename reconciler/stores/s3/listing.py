"""A prefix listed as several ListObjectsV2 streams at once, merged back into key order.

One stream returns 1,000 keys per round trip: a million-object prefix 25 ms away
is 1,000 sequential round trips. S3 lists keys in UTF-8 byte order, which is
Python's `str` order, and `StartAfter` starts a stream at any key, so the
keyspace splits into disjoint ranges listed concurrently:

- with known keys (a push mapping's local tree: what S3 should hold), a range
  boundary every `RANGE_KEYS` keys, so each range is about one page;
- without, one `Delimiter="/"` listing of the prefix itself, whose common
  prefixes ("directories") are then each listed as a range of their own.

Ranges come back in key order: range i is yielded in full before range i+1, and
at most `workers` ranges are in flight, each buffering at most `BUFFERED_PAGES`
pages, so memory stays a few pages per worker whatever the prefix holds.

The ListObjectsV2 page parser lives here too, so listing needs no botocore.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import queue
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

RANGE_KEYS = 1000  # one ListObjectsV2 page
BUFFERED_PAGES = 2
_INTS = frozenset({"MaxKeys", "KeyCount", "Size"})
_BOOLS = frozenset({"IsTruncated"})

Page = dict[str, Any]  # a ListObjectsV2 response, shaped like botocore's
# (prefix, start_after, delimiter) -> the pages of that listing, in order.
ListPages = Callable[[str, str | None, str | None], Iterator[Page]]


def iso_timestamp(text: str) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _value(name: str, node: ET.Element, timestamp: Callable[[str], datetime.datetime]) -> Any:
    text = node.text or ""
    if name in _INTS:
        return int(text)
    if name in _BOOLS:
        return text == "true"
    if name == "LastModified":
        return timestamp(text)
    return text


def _struct(node: ET.Element, timestamp: Callable[[str], datetime.datetime]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in node:
        name = _local(child.tag)
        if len(child):
            out[name] = _struct(child, timestamp)
        elif name == "ChecksumAlgorithm":  # a flattened list in the model
            out.setdefault(name, []).append(child.text or "")
        else:
            out[name] = _value(name, child, timestamp)
    return out


def parse_list_objects_v2(
    body: bytes, timestamp: Callable[[str], datetime.datetime] = iso_timestamp
) -> dict[str, Any]:
    root = ET.fromstring(body)
    parsed: dict[str, Any] = {}
    contents: list[dict[str, Any]] = []
    prefixes: list[dict[str, Any]] = []
    for child in root:
        name = _local(child.tag)
        if name == "Contents":
            contents.append(_struct(child, timestamp))
        elif name == "CommonPrefixes":
            prefixes.append(_struct(child, timestamp))
        else:
            parsed[name] = _value(name, child, timestamp)
    if contents:
        parsed["Contents"] = contents
    if prefixes:
        parsed["CommonPrefixes"] = prefixes
    return parsed


def tree_resumes_at(page: Mapping[str, Any]) -> str | None:
    """Where a flat listing on a server that lists a tree (SeaweedFS) must be asked to go on although its page
    says it is the last one; None when it is.

    SeaweedFS, measured: a page that fills up at a key K which is also a "directory" (K/... keys exist) and is
    the last entry of its level comes back IsTruncated=false, at any page size (999 keys, then `zb` and `zb/c`,
    1,000 a page: `zb/c` is never listed, by boto3's paginator either). A full page that says it is the last is
    therefore asked on once more, from K's subtree ("K/", the form its own continuation tokens take); an empty
    answer ends the listing. Without it a hidden key could be pruned from a local tree S3 is the authority of."""
    if page.get("IsTruncated") or page.get("CommonPrefixes"):
        return None
    contents = page.get("Contents") or []
    max_keys = page.get("MaxKeys")
    if not contents or not isinstance(max_keys, int) or len(contents) < max_keys:
        return None
    key = contents[-1].get("Key")
    if not isinstance(key, str):
        return None
    return key if key.endswith("/") else key + "/"


# --- ranges (pure) ----------------------------------------------------------------------------------------


def byte_order(key: str) -> str:
    """S3's order (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html): UTF-8 bytes, str order."""
    return key


def tree_order(key: str) -> str:
    """SeaweedFS's order: a directory's whole subtree comes right after its name ("a", "a/x", "a b", "a0").

    Its filer lists a tree, so it compares paths component by component: '/' sorts before every character.
    """
    return key.replace("/", "\0")


Order = Callable[[str], str]


def order_of(server: str) -> Order:
    """The listing order of the server that answered with this `Server` header."""
    return tree_order if server.startswith("SeaweedFS") else byte_order


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Keys of `prefix` after `after` up to `upto` (both included-side open when None), in `order`.

    In tree order a boundary's own subtree ("b/..." after "b") belongs to the range the boundary ends:
    whether a server's StartAfter="b" skips that subtree (SeaweedFS does) or lists it, no key is lost
    or listed twice.
    """

    prefix: str
    after: str | None = None
    upto: str | None = None
    order: Order = byte_order

    def below_end(self, key: str) -> bool:
        if self.upto is None:
            return True
        if self.order is byte_order:
            return key <= self.upto
        return self.order(key) < self.order(self.upto) + "\x01"

    def past_start(self, key: str) -> bool:
        if self.after is None:
            return True
        if self.order is byte_order:
            return key > self.after
        return self.order(key) >= self.order(self.after) + "\x01"

    def holds(self, key: str) -> bool:
        return key.startswith(self.prefix) and self.past_start(key) and self.below_end(key)


def boundaries(known: Iterable[str], every: int = RANGE_KEYS) -> list[str]:
    """Every `every`-th of `known` (any order): range edges about `every` keys apart.

    Sampling before sorting keeps this linear in the keys and its sort small, for 10,000,000 as for 10,000.
    """
    return sorted(set(itertools.islice(known, every - 1, None, every)))


def split(prefix: str, edges: Iterable[str], order: Order = byte_order) -> list[KeyRange]:
    """Disjoint ranges covering every key of `prefix`, in `order`; edges outside the prefix are ignored."""
    cuts: list[str] = []
    for edge in sorted({edge for edge in edges if edge.startswith(prefix) and edge != prefix}, key=order):
        # In tree order a cut's subtree belongs to the range it ends: a cut inside it ("b/x" after "b")
        # would start a range that lists part of that subtree again. It follows its parent when sorted.
        if order is not byte_order and cuts and edge.startswith(cuts[-1] + "/"):
            continue
        cuts.append(edge)
    bounds: list[str | None] = [None, *cuts, None]
    return [KeyRange(prefix, lo, hi, order) for lo, hi in itertools.pairwise(bounds)]


def clip(pages: Iterable[Page], part: KeyRange) -> Iterator[Page]:
    """The pages of a listing started after `part.after`, cut to the range: a range's own pages."""
    for page in pages:
        contents = page.get("Contents", [])
        kept = [obj for obj in contents if part.past_start(obj["Key"]) and part.below_end(obj["Key"])]
        if contents and not part.below_end(contents[-1]["Key"]):
            yield {**page, "Contents": kept, "IsTruncated": False}
            return
        yield page if len(kept) == len(contents) else {**page, "Contents": kept}


def _direct_and_groups(pages: Iterable[Page], order: Order) -> Iterator[Page | str]:
    """A delimiter listing as its parts in key order: pages of direct objects, and common prefixes.

    A common prefix sorts, against any direct key, where every key under it does (no direct key
    starts with it), so ordering direct keys and prefixes as strings orders the merged listing.
    """
    for page in pages:
        objects = page.get("Contents", [])
        groups = [item["Prefix"] for item in page.get("CommonPrefixes", [])]
        merged = sorted(
            itertools.chain(((obj["Key"], obj) for obj in objects), ((group, group) for group in groups)),
            key=lambda pair: order(pair[0]),
        )
        run: list[dict[str, Any]] = []
        for _, item in merged:
            if isinstance(item, str):
                if run:
                    yield {"Contents": run}
                    run = []
                yield item
            else:
                run.append(item)
        if run:
            yield {"Contents": run}


# --- concurrency --------------------------------------------------------------------------------------------

_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _pump(make: Callable[[], Iterator[Page]], out: queue.Queue[object], stop: threading.Event) -> None:
    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for page in make():
            if not put(page):
                return
    except BaseException as exc:  # handed to the consumer, raised there
        put(_Failed(exc))
        return
    put(_DONE)


def ordered(tasks: Iterable[Callable[[], Iterator[Page]]], workers: int) -> Iterator[Page]:
    """Every task's pages, task by task in the given order, up to `workers` tasks running ahead."""
    if workers <= 1:
        for task in tasks:
            yield from task()
        return
    stop = threading.Event()
    pending: list[queue.Queue[object]] = []
    source = iter(tasks)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pixel-list") as pool:

        def start() -> None:
            task = next(source, None)
            if task is not None:
                channel: queue.Queue[object] = queue.Queue(maxsize=BUFFERED_PAGES)
                pool.submit(_pump, task, channel, stop)
                pending.append(channel)

        try:
            for _ in range(workers):
                start()
            while pending:
                channel = pending.pop(0)
                while (item := channel.get()) is not _DONE:
                    if isinstance(item, _Failed):
                        raise item.exc
                    assert isinstance(item, dict)
                    yield item
                start()
        finally:
            stop.set()


def _range_task(list_pages: ListPages, part: KeyRange) -> Callable[[], Iterator[Page]]:
    return lambda: clip(list_pages(part.prefix, part.after, None), part)


def _done_page(page: Page) -> Iterator[Page]:
    yield page


def first_delimiter(known: Iterable[str] | None, workers: int) -> str | None:
    """The delimiter of the first request `listing` sends: that of the whole prefix from its start, by directory
    or not, the same whatever the server's order. So it can go out before the order is known (store.py)."""
    return "/" if known is None and workers > 1 else None


def listing(
    list_pages: ListPages, prefix: str, *, known: Iterable[str] | None, workers: int, order: Order = byte_order
) -> Iterator[Page]:
    """The pages of the whole of `prefix`, in the server's `order`, listed `workers` ranges at a time.

    `known`: keys expected under the prefix (any order) to cut ranges at; None lists by directory.
    """
    if workers <= 1:
        return list_pages(prefix, None, first_delimiter(known, workers))
    if known is not None:
        parts = split(prefix, boundaries(known), order)
        return ordered((_range_task(list_pages, part) for part in parts), workers)

    def tasks() -> Iterator[Callable[[], Iterator[Page]]]:
        for item in _direct_and_groups(list_pages(prefix, None, first_delimiter(known, workers)), order):
            if isinstance(item, str):
                yield _range_task(list_pages, KeyRange(item))
            else:
                yield functools.partial(_done_page, item)

    return ordered(tasks(), workers)
