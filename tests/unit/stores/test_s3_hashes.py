"""Which S3 ETags are md5s: never those of SSE-KMS / SSE-C objects, whatever they look like."""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from reconciler.model import S3StoreSpec
from reconciler.stores.s3 import S3Store

LOOKS_LIKE_MD5 = "0123456789abcdef0123456789abcdef"
RECORDED = "fedcba9876543210fedcba9876543210"


class Paginator:
    def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
        return [{"Contents": [{"Key": "p/a", "ETag": f'"{LOOKS_LIKE_MD5}"', "Size": 3},
                              {"Key": "p/b", "ETag": f'"{LOOKS_LIKE_MD5}"', "Size": 3}]}]


class Client:
    def __init__(self, bucket_sse: str | None, object_sse: str | None = None) -> None:
        self.bucket_sse, self.object_sse = bucket_sse, object_sse
        self.heads: list[str] = []

    def head_bucket(self, **kwargs: Any) -> dict[str, Any]:
        return {}

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        (page,) = Paginator().paginate(**kwargs)
        return page

    def get_bucket_encryption(self, **kwargs: Any) -> dict[str, Any]:
        if self.bucket_sse is None:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "ServerSideEncryptionConfigurationNotFoundError"}}, "GetBucketEncryption"
            )
        rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": self.bucket_sse}}
        return {"ServerSideEncryptionConfiguration": {"Rules": [rule]}}

    def head_object(self, **kwargs: Any) -> dict[str, Any]:
        self.heads.append(kwargs["Key"])
        head: dict[str, Any] = {"ETag": f'"{LOOKS_LIKE_MD5}"', "ContentLength": 3, "Metadata": {}}
        if kwargs["Key"].endswith("b"):
            head["Metadata"] = {"md5": RECORDED}
        if self.object_sse:
            head["ServerSideEncryption"] = self.object_sse
        return head


def store(client: Client) -> S3Store:
    return S3Store(S3StoreSpec("s3", "bucket"), client=client)  # type: ignore[arg-type]


def test_plain_bucket_trusts_listed_etags_without_a_head() -> None:
    client = Client(bucket_sse=None)
    assert [e.md5 for e in store(client).list("p/")] == [LOOKS_LIKE_MD5, LOOKS_LIKE_MD5]
    assert client.heads == []
    aes = Client(bucket_sse="AES256")
    assert [e.md5 for e in store(aes).list("p/")] == [LOOKS_LIKE_MD5, LOOKS_LIKE_MD5]


def test_kms_bucket_reads_recorded_md5s_and_leaves_the_rest_unknown() -> None:
    client = Client(bucket_sse="aws:kms")
    entries = list(store(client).list("p/"))
    assert [e.md5 for e in entries] == [None, RECORDED]  # None -> the planner schedules a rehash
    assert client.heads == ["p/a", "p/b"]


def test_head_of_an_sse_kms_object_does_not_take_its_etag_for_an_md5() -> None:
    kms = store(Client(bucket_sse=None, object_sse="aws:kms"))
    a, b = kms.stat("p/a"), kms.stat("p/b")
    assert a is not None and a.md5 is None
    assert b is not None and b.md5 == RECORDED
    plain = store(Client(bucket_sse=None)).stat("p/a")
    assert plain is not None and plain.md5 == LOOKS_LIKE_MD5
