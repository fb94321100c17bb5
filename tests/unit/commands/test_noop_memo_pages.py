"""The no-op memo's listing in S3's own order (byte order, StartAfter after the last key, keys URL-encoded), on a
bucket held in memory that answers ListObjectsV2 as S3 documents it: SeaweedFS, which the integration tests list,
orders a tree and continues by its token, so the last-key markers of S3 are met only here."""

from __future__ import annotations

import hashlib
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.commands import noop_memo
from reconciler.stores.s3.direct.raw import DirectTransport, page_of
from reconciler.stores.s3.store import S3Store

PREFIX = "p/"


class ListingBucket(DirectTransport):
    """A DirectTransport whose ListObjectsV2 is answered from `keys` in UTF-8 byte order, as S3 answers it:
    `StartAfter` lists what follows it, keys URL-encoded (`encoding-type=url`), at most `MaxKeys` a page."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        super().__init__("http://127.0.0.1:9/bucket/", "us-east-1", lambda: None, bucket="bucket", pool_size=1,
                         connect_timeout=1, read_timeout=1)
        self.keys = dict(keys)
        self.server = "AmazonS3"
        self.asked: list[str | None] = []
        self._lock = threading.Lock()

    def list_body(self, prefix: str, params: Mapping[str, Any]) -> bytes:
        after = params.get("StartAfter")
        with self._lock:
            self.asked.append(after)
        limit = int(params.get("MaxKeys", 1000))
        found = sorted(k for k in self.keys if k.startswith(prefix) and (after is None or
                                                                        k.encode() > str(after).encode()))
        page, truncated = found[:limit], len(found) > limit
        contents = "".join(
            f"<Contents><Key>{_xml(urllib.parse.quote_plus(key, safe='/'))}</Key>"
            f"<LastModified>2026-12-01T00:00:00.000Z</LastModified>"
            f"<ETag>&quot;{hashlib.md5(self.keys[key]).hexdigest()}&quot;</ETag>"
            f"<Size>{len(self.keys[key])}</Size><StorageClass>STANDARD</StorageClass></Contents>"
            for key in page
        )
        start = f"<StartAfter>{_xml(urllib.parse.quote_plus(str(after), safe='/'))}</StartAfter>" if after else ""
        token = "<NextContinuationToken>opaque&amp;1==</NextContinuationToken>" if truncated else ""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>bucket</Name><Prefix>{prefix}</Prefix>{start}<KeyCount>{len(page)}</KeyCount>"
            f"<MaxKeys>{limit}</MaxKeys><EncodingType>url</EncodingType>"
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{contents}{token}</ListBucketResult>"
        ).encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _store(bucket: ListingBucket) -> S3Store:
    return cast(S3Store, type("Store", (), {"name": "s3", "transport": bucket})())


def _listed(pages: list[noop_memo.ListedPage]) -> list[tuple[str, int]]:
    return [(item["Key"], item["Size"]) for page in pages for item in page_of(page.body).get("Contents", [])]


NAMES = st.text(alphabet="ab/ +&<%é~", min_size=1, max_size=4)


@given(
    before=st.dictionaries(NAMES, st.binary(max_size=3), max_size=14),
    added=st.dictionaries(NAMES, st.binary(max_size=3), max_size=4),
    removed=st.sets(NAMES, max_size=4),
    page=st.integers(min_value=1, max_value=4),
)
def test_pages_asked_at_the_recorded_cuts_list_the_bucket_whatever_changed(
    before: dict[str, bytes], added: dict[str, bytes], removed: set[str], page: int
) -> None:
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(noop_memo, "page_keys", page)
        bucket = ListingBucket({PREFIX + k: v for k, v in before.items()})
        (recorded,) = noop_memo._listings([(_store(bucket), PREFIX)], {})
        # Recorded by StartAfter after each page's last key: the whole prefix, in byte order.
        assert _listed(recorded) == sorted((k, len(v)) for k, v in bucket.keys.items())
        cuts = [listed.after for listed in recorded]
        bucket.keys.update({PREFIX + k: v for k, v in added.items()})
        for key in removed:
            bucket.keys.pop(PREFIX + key, None)
        bucket.asked.clear()
        (again,) = noop_memo._listings([(_store(bucket), PREFIX)], {("s3", PREFIX): cuts})
    assert _listed(again) == sorted((k, len(v)) for k, v in bucket.keys.items())
    # Every recorded page asked first (all at once: in any order), before any page asked one after another.
    assert sorted(bucket.asked[: len(cuts)], key=str) == sorted((cut and cut[1] for cut in cuts), key=str)
    if not added and not removed:
        assert again == recorded and len(bucket.asked) == len(cuts)  # every page once, none more


def test_a_server_that_does_not_move_on_is_not_asked_for_ever(monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = ListingBucket({PREFIX + "a": b"1", PREFIX + "b": b"2"})
    stuck = bucket.list_body(PREFIX, {"StartAfter": PREFIX + "a", "MaxKeys": 1}).replace(
        b"<IsTruncated>false</IsTruncated>", b"<IsTruncated>true</IsTruncated>").replace(b"p/b</Key>", b"p/a</Key>")
    monkeypatch.setattr(bucket, "list_body", lambda prefix, params: stuck)
    with pytest.raises(noop_memo.ReplayMismatch):
        noop_memo._listings([(_store(bucket), PREFIX)], {("s3", PREFIX): [("StartAfter", PREFIX + "a")]})
