"""The fast paths give exactly what botocore gives: the ListObjectsV2 parser (SeaweedFS and moto) and the
direct requests of stores/s3/direct/raw.py (listing pages, small PUTs with odd keys, errors)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from moto import mock_aws

from reconciler.dev.seaweed import SeaweedServer
from reconciler.model import S3StoreSpec
from reconciler.stores.base import ObjectChanged, PermanentStoreError
from reconciler.stores.s3 import S3Store, make_client
from reconciler.stores.s3.direct.raw import DirectTransport
from reconciler.stores.s3.transport import list_params
from tests.waiting import wait_for

# Keys botocore url-decodes after parsing (EncodingType=url): spaces, '+', '%', unicode, XML specials.
KEYS = ["p/plain.jsonl", "p/with space.json", "p/plus+sign", "p/100%.txt", "p/ünï/código.jpg", "p/a&b<c>.json"]
KEYS += [f"p/many/{i:05d}.jsonl" for i in range(1_205)]  # more than one page of 1,000


def pages(client: Any, bucket: str) -> list[dict[str, Any]]:
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="p/"):
        page.pop("ResponseMetadata")
        out.append(page)
    return out


@pytest.mark.integration
def test_fast_parser_matches_botocore_on_seaweedfs(
    seaweed: SeaweedServer, bucket: str, aws_env: dict[str, str]
) -> None:
    plain = seaweed.client()
    with ThreadPoolExecutor(8) as pool:  # side by side: 1,211 round trips one at a time were most of this test
        list(pool.map(lambda key: plain.put_object(Bucket=bucket, Key=key, Body=key.encode()), KEYS))
    spec = S3StoreSpec(name="s3", bucket=bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path")
    fast = make_client(spec)
    expected = pages(plain, bucket)
    assert len(expected) == 2 and sum(len(p["Contents"]) for p in expected) == len(KEYS)
    assert pages(fast, bucket) == expected
    listed = {e.key for e in S3Store(spec, fast).list("p/")}
    assert listed == set(KEYS)


@pytest.fixture
def moto_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="moto-bucket")
        yield "moto-bucket"


def test_fast_parser_matches_botocore_on_moto(moto_bucket: str) -> None:
    plain = boto3.client("s3", region_name="us-east-1")
    for key in KEYS[:50]:
        plain.put_object(Bucket=moto_bucket, Key=key, Body=key.encode())
    fast = make_client(S3StoreSpec(name="s3", bucket=moto_bucket, region="us-east-1"))
    expected = pages(plain, moto_bucket)
    assert expected[0]["Contents"][0]["LastModified"].tzinfo is not None
    assert pages(fast, moto_bucket) == expected


def direct_pages(direct: DirectTransport, prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token: str | None = None
    while not out or (out[-1].get("IsTruncated") and token):
        out.append(direct.list_page(prefix, list_params(token=token)))
        token = out[-1].get("NextContinuationToken")
    return out


@pytest.mark.integration
def test_raw_listing_pages_and_puts_match_botocore(
    seaweed: SeaweedServer, bucket: str, aws_env: dict[str, str]
) -> None:
    spec = S3StoreSpec(name="s3", bucket=bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path")
    store = S3Store(spec)
    direct = store.transport
    assert isinstance(direct, DirectTransport)  # a store that built its own client sends its requests directly
    body = b'{"a": 1}\n'
    with ThreadPoolExecutor(8) as pool:  # side by side, as an apply writes
        list(pool.map(lambda key: store.write(key, lambda: io.BytesIO(body), size=len(body),
                                              md5=hashlib.md5(body).hexdigest(), if_absent=True), KEYS))
    plain = seaweed.client()
    expected = pages(plain, bucket)
    assert sum(len(p["Contents"]) for p in expected) == len(KEYS)  # every odd key landed under its own name
    raw = [{k: v for k, v in page.items() if k != "ResponseMetadata"} for page in direct_pages(direct, "p/")]
    assert [[o["Key"] for o in p["Contents"]] for p in raw] == [[o["Key"] for o in p["Contents"]] for p in expected]
    assert [[(o["ETag"], o["Size"], o["LastModified"]) for o in p["Contents"]] for p in raw] == [
        [(o["ETag"], o["Size"], o["LastModified"]) for o in p["Contents"]] for p in expected
    ]
    head = plain.head_object(Bucket=bucket, Key="p/ünï/código.jpg")
    assert head["Metadata"] == {"md5": hashlib.md5(body).hexdigest()}


@pytest.mark.integration
def test_raw_put_errors_are_classified_like_botocore_ones(
    seaweed: SeaweedServer, bucket: str, aws_env: dict[str, str]
) -> None:
    spec = S3StoreSpec(name="s3", bucket=bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path")
    store = S3Store(spec)
    body = b"v1"
    md5 = hashlib.md5(body).hexdigest()
    first = store.write("k", lambda: io.BytesIO(body), size=2, md5=md5, if_absent=True)
    assert first.etag == md5  # the ETag the server answered: a single-part md5
    with pytest.raises(ObjectChanged, match="changed since the plan"):  # If-None-Match: * on an existing key
        store.write("k", lambda: io.BytesIO(b"v2"), size=2, md5=hashlib.md5(b"v2").hexdigest(), if_absent=True)
    with pytest.raises(ObjectChanged):  # If-Match with a stale ETag
        store.write("k", lambda: io.BytesIO(b"v2"), size=2, md5=hashlib.md5(b"v2").hexdigest(), if_match="0" * 32)
    with pytest.raises(PermanentStoreError) as bad:  # the body does not hash to the Content-MD5 it claims
        store.write("k2", lambda: io.BytesIO(b"xx"), size=2, md5=md5, if_absent=True)
    assert bad.value.code == "BadDigest"
    assert plain_body(seaweed, bucket, "k") == b"v1"
    assert store.stat("k2") is None


def plain_body(seaweed: SeaweedServer, bucket: str, key: str) -> bytes:
    return bytes(seaweed.client().get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.mark.integration
@pytest.mark.parametrize("far", [False, True], ids=["near", "far"])
def test_checking_the_bucket_also_learns_its_encryption_and_far_away_opens_the_listings_connections(
    seaweed: SeaweedServer, bucket: str, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, far: bool
) -> None:
    import reconciler.stores.s3.store as store_module

    monkeypatch.setattr(store_module, "FAR_ROUND_TRIP_S", -1.0 if far else 60.0)
    spec = S3StoreSpec(name="s3", bucket=bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path")
    store = S3Store(spec, list_concurrency=6)
    direct = store.transport
    assert isinstance(direct, DirectTransport) and store._etags_trusted is None
    store.check_bucket()
    assert store._etags_trusted is True  # no default KMS encryption: listed ETags are md5s
    assert store.transport is direct and store._checking is direct  # all of it without botocore
    if far:  # opened in the background
        wait_for(lambda: len(direct._pool._idle) >= 6, "six idle connections opened ahead")
    # Far away the ranges of the first listing need no connect; near, a connect is cheaper than opening ahead.
    assert len(direct._pool._idle) == 6 if far else len(direct._pool._idle) <= 2  # HEAD and encryption


@pytest.mark.integration
def test_a_missing_bucket_learns_nothing_from_the_checks_sent_beside_its_head(
    seaweed: SeaweedServer, aws_env: dict[str, str]
) -> None:
    spec = S3StoreSpec(
        name="s3", bucket="pixel-no-such-bucket", endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path"
    )
    store = S3Store(spec)
    with pytest.raises(PermanentStoreError, match="does not exist"):
        store.check_bucket()
    assert store._etags_trusted is None
