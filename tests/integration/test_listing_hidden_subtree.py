"""SeaweedFS hides a key's subtree when a full listing page ends at that key: pixel's listings ask on.

Measured on the SeaweedFS the tests run: 999 keys, then `zb` and `zb/c`, 1,000 keys a page: the first page ends at
`zb` and says IsTruncated=false, so `zb/c` is never listed, by boto3's paginator either. A listing pixel plans
from must still hold every key (`listing.tree_resumes_at`), the store's and the no-op memo's alike.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from reconciler.commands import noop_memo
from reconciler.model import S3StoreSpec
from reconciler.stores.s3 import S3Store

if TYPE_CHECKING:
    from reconciler.dev.seaweed import SeaweedServer

pytestmark = [pytest.mark.integration]


def _world(seaweed: SeaweedServer, bucket: str, fill: int) -> tuple[S3Store, str, list[str]]:
    prefix = f"hidden-{uuid.uuid4().hex[:8]}/"
    keys = [f"{prefix}k{i:04}" for i in range(fill)] + [f"{prefix}zb", f"{prefix}zb/c"]
    client = seaweed.client()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=key.encode()), keys))
    spec = S3StoreSpec(name="s3", bucket=bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path")
    return S3Store(spec), prefix, keys


@pytest.mark.parametrize("how", ["one at a time", "by range, the keys known"])
def test_the_store_lists_the_subtree_of_the_key_a_full_last_page_ends_at(
    seaweed: SeaweedServer, bucket: str, aws_env: dict[str, str], how: str
) -> None:
    """The flat listings (--parallelism 1, and the warm path's, by ranges cut at the keys the hash cache knows:
    fewer than a page's worth here, so one range); the listing by directory sees `zb/` as a group and never
    meets the quirk."""
    store, prefix, keys = _world(seaweed, bucket, 999)
    client = seaweed.client()
    paged = [o["Key"] for p in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
             for o in p.get("Contents", [])]
    assert f"{prefix}zb/c" not in paged and len(paged) == 1000  # the server's quirk, still there
    if how == "one at a time":
        store.list_concurrency = 1
        entries = list(store.list(prefix))
    else:
        entries = list(store.list(prefix, known=keys[:-2]))
    assert sorted(e.key for e in entries) == keys


def test_the_memo_lists_it_too_and_asks_it_again_at_its_cut(
    seaweed: SeaweedServer, bucket: str, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(noop_memo, "page_keys", 3)
    store, prefix, keys = _world(seaweed, bucket, 5)  # k0000-k0004 zb: the second page of 3 ends at zb
    (pages,) = noop_memo._listings([(store, prefix)], {})
    assert sorted(e.key for e in noop_memo._Listed(store, {prefix: pages}).list(prefix)) == keys
    assert noop_memo._listings([(store, prefix)], {("s3", prefix): [p.after for p in pages]}) == [pages]
    # The full page alone, without the page asked on under zb, is no whole listing.
    with pytest.raises(noop_memo.ReplayMismatch):
        list(noop_memo._Listed(store, {prefix: pages[:-1]}).list(prefix))
