"""The fast ListObjectsV2 parser gives exactly what botocore's own parser gives, on SeaweedFS and on moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from reconciler.dev.seaweed import SeaweedServer
from reconciler.model import S3StoreSpec
from reconciler.stores.s3 import S3Store, make_client

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
    for key in KEYS:
        plain.put_object(Bucket=bucket, Key=key, Body=key.encode())
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
