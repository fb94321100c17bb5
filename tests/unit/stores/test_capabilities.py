"""What the apply, verify and workflow ask of a store is a capability (a Protocol), not the S3Store class."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from reconciler.model import S3StoreSpec
from reconciler.stores.base import ChecksOnFirstUse, ChecksReachable, JournalsUploads, RecordsMd5s
from reconciler.stores.local import LocalStore
from reconciler.stores.memory import MemoryStore
from reconciler.stores.s3 import S3Store
from reconciler.stores.s3.botocore_transport import BotocoreTransport
from reconciler.stores.s3.conditions import conditions
from reconciler.stores.s3.direct.raw import headers_of


class RecordingClient:
    """Just enough of a botocore client to start and complete a multipart upload."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def put_object(self, *, Key: str, Body: bytes, **kwargs: Any) -> dict[str, Any]:
        self.records[Key] = json.loads(Body)
        return {"ETag": '"e"'}

    def create_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        return {"UploadId": "u-1"}


def s3_store(**kwargs: Any) -> S3Store:
    return S3Store(S3StoreSpec("s3", "bucket", endpoint="http://127.0.0.1:1"), client=RecordingClient(), **kwargs)  # type: ignore[arg-type]


def test_only_the_s3_store_has_the_s3_capabilities(tmp_path: Path) -> None:
    s3 = s3_store()
    for capability in (JournalsUploads, RecordsMd5s, ChecksReachable, ChecksOnFirstUse):
        assert isinstance(s3, capability)
        assert not isinstance(LocalStore("disk", tmp_path), capability)
        assert not isinstance(MemoryStore("mem"), capability)


def test_an_apply_id_is_given_not_set_and_binding_leaves_the_store_as_it_was() -> None:
    s3 = s3_store(apply_id="from-the-constructor")
    bound = s3.for_apply("lock-42")
    assert (s3.apply_id, bound.apply_id) == ("from-the-constructor", "lock-42")
    assert bound.transport is s3.transport  # one transport and one connection pool for both

    upload_id, record = bound._journal.start("upload", "k/big.bin")
    assert isinstance(s3.transport, BotocoreTransport)
    client = s3.transport.client
    assert isinstance(client, RecordingClient)
    assert upload_id == "u-1" and client.records[record]["apply_id"] == "lock-42"
    _, other = s3._journal.start("upload", "k/big.bin")
    assert client.records[other]["apply_id"] == "from-the-constructor"


def test_one_builder_gives_botocore_parameters_and_the_same_conditions_as_headers() -> None:
    assert conditions(if_absent=True, if_match="ignored") == {"IfNoneMatch": "*"}
    made = conditions(if_match='"abc"', src_etag="def")
    assert made == {"IfMatch": '"abc"', "CopySourceIfMatch": '"def"'}
    assert headers_of(made) == {"If-Match": '"abc"', "x-amz-copy-source-if-match": '"def"'}
    assert conditions() == {}


class ThrottledRaw:
    """The direct path's HeadBucket answering 503 twice, then 200."""

    def __init__(self) -> None:
        self.statuses = [503, 503, 200]
        self.closed = False

        self.warmed: list[int] = []

    def head_bucket(self) -> int:
        return self.statuses.pop(0)

    def bucket_encryption(self) -> frozenset[str] | None:
        return frozenset({"aws:kms"})

    def warm(self, connections: int) -> None:
        self.warmed.append(connections)

    def close(self) -> None:
        self.closed = True


def test_a_throttled_check_bucket_is_asked_again_not_handed_to_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.stores.s3.store as store_module

    monkeypatch.setattr(store_module, "FAR_ROUND_TRIP_S", -1.0)  # as if far away: the listing's connections too
    s3 = s3_store()
    raw = ThrottledRaw()
    s3.transport = s3._checking = raw  # type: ignore[assignment]
    s3._fallback = lambda: pytest.fail("a throttled HEAD is asked again, not handed to botocore")
    s3.check_bucket()
    assert raw.statuses == [] and not raw.closed and s3.transport is cast(Any, raw)
    # Sent beside the HEAD: the first listing's connections, and what the bucket encrypts with (KMS:
    # its ETags are no md5s), learnt once the bucket answered.
    assert raw.warmed == [s3.list_concurrency] and s3._etags_trusted is False


class LateKmsAnswer:
    """A bucket encrypted with SSE-KMS by default, whose GetBucketEncryption answers only once the first listing
    page has been answered: its listed ETags look like md5s and are not."""

    bucket = "bucket"
    stored = b"the object's bytes"

    def __init__(self) -> None:
        self.server: str | None = None
        self.listed = threading.Event()
        self.headed: list[str] = []

    def list_page(self, prefix: str, params: Any) -> dict[str, Any]:
        self.server = "AmazonS3"
        self.listed.set()
        kms_etag = hashlib.md5(b"not the bytes").hexdigest()
        return {"Contents": [{"Key": "a/k", "Size": len(self.stored), "ETag": f'"{kms_etag}"'}], "IsTruncated": False}

    def bucket_encryption(self) -> frozenset[str] | None:
        assert self.listed.wait(30), "asked beside the first page: answered once that page is"
        return frozenset({"aws:kms"})

    def head_object(self, key: str, params: Any) -> dict[str, Any]:
        self.headed.append(key)
        return {"ContentLength": len(self.stored), "Metadata": {"md5": hashlib.md5(self.stored).hexdigest()}}

    def warm(self, connections: int) -> None:
        """Nothing to open."""


@pytest.mark.parametrize("workers", [1, 4])
def test_a_listing_judges_no_etag_before_the_encryption_answer_came(workers: int) -> None:
    s3 = s3_store(list_concurrency=workers)
    late = LateKmsAnswer()
    s3.transport = s3._checking = late  # type: ignore[assignment]
    s3.check_on_first_use()
    listed = list(s3.list("a/"))
    # The ETag is no md5 under KMS: the md5 pixel recorded is read instead, never the ETag taken for one.
    assert [(e.key, e.md5) for e in listed] == [("a/k", hashlib.md5(late.stored).hexdigest())]
    assert late.headed == ["a/k"]
