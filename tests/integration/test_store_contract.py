"""One contract for every store pixel writes objects to: S3Store on each transport, and MemoryStore.

S3Store holds its semantics once over a transport (stores/s3/transport.py); these tests hold both
transports to the same answers on a real SeaweedFS, and MemoryStore (the planner's property tests'
stand-in for S3) to the same answers where it has the operation. A difference between the transports
(a condition not sent, a refusal read differently, a part list shaped wrongly) fails here by name.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import pytest

from reconciler.dev.seaweed import SeaweedServer, unique_bucket_name
from reconciler.model import S3StoreSpec
from reconciler.stores.base import ObjectChanged, PermanentStoreError, Store, StoreError
from reconciler.stores.memory import MemoryStore
from reconciler.stores.s3 import MIB, UPLOAD_JOURNAL_PREFIX, S3Store, journal_key, make_client
from reconciler.stores.s3.botocore_transport import BotocoreTransport
from reconciler.stores.s3.direct.raw import DirectTransport
from tests.faults.proxy import Fault, FaultProxy

pytestmark = pytest.mark.integration

TRANSPORTS = ["botocore", "direct"]
STORES = [*TRANSPORTS, "memory"]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@contextmanager
def opened(data: bytes) -> Iterator[BinaryIO]:
    yield io.BytesIO(data)


def spec_of(endpoint: str, bucket: str) -> S3StoreSpec:
    return S3StoreSpec("s3", bucket, endpoint=endpoint, region="us-east-1", addressing_style="path",
                       checksum="when_supported")


def s3_store(kind: str, endpoint: str, bucket: str, **kw: Any) -> S3Store:
    spec = spec_of(endpoint, bucket)
    if kind == "botocore":
        store = S3Store(spec, client=make_client(spec), **kw)
        assert isinstance(store.transport, BotocoreTransport)
    else:
        store = S3Store(spec, **kw)
        assert isinstance(store.transport, DirectTransport)
    return store


@dataclass
class Subject:
    """A store under contract, and what a test needs to look at it from outside."""

    kind: str
    store: Store
    put_foreign: Callable[[str, bytes], None]  # another tool's write
    body_of: Callable[[str], bytes | None]  # what is really stored (None: nothing)

    def write(self, key: str, data: bytes, **kw: Any) -> Any:
        return self.store.write(key, lambda: opened(data), size=len(data), md5=kw.pop("md5", md5(data)), **kw)

    def read(self, key: str, **kw: Any) -> bytes:
        with self.store.open(key, **kw) as body:
            return body.read()


@pytest.fixture(params=STORES)
def subject(request: pytest.FixtureRequest) -> Subject:
    kind: str = request.param
    if kind == "memory":
        memory = MemoryStore("s3")

        def memory_body(key: str) -> bytes | None:
            return memory.get(key) if key in memory else None

        return Subject(kind, memory, memory.put, memory_body)
    seaweed: SeaweedServer = request.getfixturevalue("seaweed")
    bucket: str = request.getfixturevalue("bucket")
    request.getfixturevalue("aws_env")
    client = seaweed.client()

    def put_foreign(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=data)

    def s3_body(key: str) -> bytes | None:
        try:
            return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        except client.exceptions.NoSuchKey:
            return None

    return Subject(kind, s3_store(kind, seaweed.endpoint, bucket), put_foreign, s3_body)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest, aws_env: dict[str, str]) -> str:
    return str(request.param)


# --- every store ----------------------------------------------------------------------------------------------


def test_put_get_stat_list_delete(subject: Subject) -> None:
    entry = subject.write("d/a.json", b'{"a": 1}\n', if_absent=True)
    subject.write("d/sub/b.json", b"b", if_absent=True)
    subject.put_foreign("e/c.json", b"c")
    assert entry.md5 == md5(b'{"a": 1}\n') and entry.size == 9 and entry.etag
    stat = subject.store.stat("d/a.json")
    assert stat is not None and (stat.size, stat.md5, stat.etag) == (9, entry.md5, entry.etag)
    assert subject.read("d/a.json") == b'{"a": 1}\n'
    assert [(e.key, e.size, e.md5) for e in subject.store.list("d/")] == [
        ("d/a.json", 9, entry.md5), ("d/sub/b.json", 1, md5(b"b"))
    ]
    subject.store.delete("d/a.json", if_match=entry.etag)
    assert subject.store.stat("d/a.json") is None and subject.body_of("d/a.json") is None
    subject.store.delete("d/a.json")  # deleting what is gone is no error
    assert [e.key for e in subject.store.list("")] == ["d/sub/b.json", "e/c.json"]


def test_a_write_whose_precondition_fails_is_refused_and_changes_nothing(subject: Subject) -> None:
    first = subject.write("k", b"v1", if_absent=True)
    with pytest.raises(ObjectChanged):  # If-None-Match: * on an existing key
        subject.write("k", b"v2", if_absent=True)
    with pytest.raises(ObjectChanged):  # If-Match on a version that is not the current one
        subject.write("k", b"v2", if_match="0" * 32)
    assert subject.body_of("k") == b"v1"
    second = subject.write("k", b"v2", if_match=first.etag)
    assert subject.body_of("k") == b"v2" and second.etag != first.etag


def test_a_delete_whose_precondition_fails_is_refused_and_keeps_the_object(subject: Subject) -> None:
    entry = subject.write("k", b"v1", if_absent=True)
    subject.put_foreign("k", b"someone else's")
    with pytest.raises(ObjectChanged):
        subject.store.delete("k", if_match=entry.etag)
    assert subject.body_of("k") == b"someone else's"


def test_a_body_that_does_not_hash_to_its_md5_is_refused_and_nothing_lands(subject: Subject) -> None:
    with pytest.raises(PermanentStoreError) as refused:
        subject.write("k", b"what is sent", md5=md5(b"what the plan saw"), if_absent=True)
    assert refused.value.code == "BadDigest"
    assert subject.body_of("k") is None


def test_a_read_pinned_to_an_old_version_is_refused_and_a_missing_key_says_so(subject: Subject) -> None:
    entry = subject.write("k", b"v1", if_absent=True)
    assert subject.read("k", if_match=entry.etag) == b"v1"
    subject.put_foreign("k", b"v2")
    with pytest.raises(ObjectChanged):
        subject.read("k", if_match=entry.etag)
    assert subject.store.stat("nothing-here") is None
    with pytest.raises(PermanentStoreError) as missing:
        subject.read("nothing-here")
    assert missing.value.code == "NoSuchKey"


def test_a_copy_records_the_md5_and_honours_both_its_conditions(subject: Subject) -> None:
    data = b'{"copied": true}\n'
    subject.put_foreign("src", data)
    src = subject.store.stat("src")
    assert src is not None
    copied = subject.store.copy("src", "dst", md5=md5(data), src_etag=src.etag, if_absent=True)
    assert (copied.size, copied.md5) == (len(data), md5(data)) and subject.body_of("dst") == data
    dst = subject.store.stat("dst")
    assert dst is not None and dst.md5 == md5(data)
    with pytest.raises(ObjectChanged):  # the destination exists now
        subject.store.copy("src", "dst", md5=md5(data), src_etag=src.etag, if_absent=True)
    with pytest.raises(ObjectChanged):  # the source is not the version the plan saw
        subject.store.copy("src", "dst2", md5=md5(data), src_etag="0" * 32, if_absent=True)
    assert subject.body_of("dst2") is None


# --- both transports: what MemoryStore has no operation for ---------------------------------------------------


def test_a_ranged_read_returns_the_range_and_honours_its_pin(
    seaweed: SeaweedServer, bucket: str, transport: str
) -> None:
    store = s3_store(transport, seaweed.endpoint, bucket)
    data = os.urandom(100_000)
    entry = store.write("k", lambda: opened(data), size=len(data), md5=md5(data), if_absent=True)
    with store.open_range("k", 1_000, 51_000, if_match=entry.etag) as body:
        assert body.read() == data[1_000:51_000]
    with pytest.raises(ObjectChanged), store.open_range("k", 0, 10, if_match="0" * 32) as body:
        body.read()


def test_a_download_cut_midway_resumes_where_it_broke_on_the_same_version(
    seaweed: SeaweedServer, bucket: str, transport: str
) -> None:
    data = os.urandom(3 * MIB)
    seaweed.client().put_object(Bucket=bucket, Key="big.bin", Body=data)
    with FaultProxy(seaweed.endpoint, [Fault("cut", method="GET", path="/big.bin", times=1)]) as proxy:
        store = s3_store(transport, proxy.endpoint, bucket)
        with store.open("big.bin") as body:
            got = body.read()
        assert proxy.injected("cut") == 1
        gets = [line for line in proxy.log.lines if line.startswith("GET ") and "big.bin" in line]
    assert got == data
    assert len(gets) == 2, proxy.log.lines  # the cut answer, then one ranged GET from where it broke


@pytest.fixture(scope="module")
def listed(seaweed: SeaweedServer) -> Iterator[tuple[str, list[str]]]:
    """A bucket of 1,055 keys (past the first page of 1,000, and some that need escaping), and its keys: put once
    for both transports, which only list it."""
    bucket = seaweed.create_bucket(unique_bucket_name("listed"))
    keys = [f"p/many/{i:05d}" for i in range(1_050)] + ["p/a b", "p/a+b", "p/ünï", "p/x&<y>", "p/z"]
    client = seaweed.client()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=key.encode()), keys))
    yield bucket, keys
    seaweed.delete_bucket(bucket)


def test_listing_pages_are_followed_and_ranges_merge_back_in_order(
    seaweed: SeaweedServer, listed: tuple[str, list[str]], transport: str
) -> None:
    bucket, keys = listed
    sequential = [e.key for e in s3_store(transport, seaweed.endpoint, bucket, list_concurrency=1).list("p/")]
    assert sorted(sequential) == sorted(keys) and len(sequential) == len(keys)  # past the first page of 1,000
    parallel = s3_store(transport, seaweed.endpoint, bucket, list_concurrency=4)
    assert [e.key for e in parallel.list("p/")] == sequential
    assert [e.key for e in parallel.list_expecting("p/", keys[::300])] == sequential


def uploads(seaweed: SeaweedServer, bucket: str) -> list[tuple[str, str]]:
    listed = seaweed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [(u["Key"], u["UploadId"]) for u in listed]


def records(seaweed: SeaweedServer, bucket: str) -> list[str]:
    listed = seaweed.client().list_objects_v2(Bucket=bucket, Prefix=UPLOAD_JOURNAL_PREFIX).get("Contents", [])
    return [o["Key"] for o in listed]


def test_multipart_upload_completes_under_its_condition_and_leaves_nothing_behind(
    seaweed: SeaweedServer, bucket: str, transport: str
) -> None:
    store = s3_store(transport, seaweed.endpoint, bucket, multipart_threshold=5 * MIB, part_size=5 * MIB)
    data = os.urandom(11 * MIB)
    entry = store.write("big.bin", lambda: opened(data), size=len(data), md5=md5(data), if_absent=True)
    assert entry.etag is not None and entry.etag.endswith("-3")
    head = seaweed.client().head_object(Bucket=bucket, Key="big.bin", ChecksumMode="ENABLED")
    assert head["Metadata"]["md5"] == md5(data) and head["ChecksumType"] == "FULL_OBJECT"
    stat = store.stat("big.bin")
    assert stat is not None and stat.md5 == md5(data)
    with pytest.raises(ObjectChanged):  # If-None-Match on the complete: aborted, not completed
        store.write("big.bin", lambda: opened(data[::-1]), size=len(data), md5=md5(data[::-1]), if_absent=True)
    assert uploads(seaweed, bucket) == [] and records(seaweed, bucket) == []
    assert seaweed.client().get_object(Bucket=bucket, Key="big.bin")["Body"].read() == data


def test_a_copy_by_parts_is_journaled_completed_and_pinned_to_its_source(
    seaweed: SeaweedServer, bucket: str, transport: str
) -> None:
    store = s3_store(transport, seaweed.endpoint, bucket, copy_part_size=5 * MIB)
    data = os.urandom(11 * MIB)
    seaweed.client().put_object(Bucket=bucket, Key="src.bin", Body=data, ContentType="application/x-thing")
    entry = store._multipart_copy("src.bin", "dst.bin", md5=md5(data), src_etag=None, when={"IfNoneMatch": "*"})
    assert entry.size == len(data) and entry.etag is not None and entry.etag.endswith("-3")
    head = seaweed.client().head_object(Bucket=bucket, Key="dst.bin")
    assert head["Metadata"]["md5"] == md5(data) and head["ContentType"] == "application/x-thing"
    with pytest.raises(ObjectChanged):
        store._multipart_copy("src.bin", "dst2.bin", md5=md5(data), src_etag="0" * 32, when={})
    assert uploads(seaweed, bucket) == [] and records(seaweed, bucket) == []


def test_a_killed_applys_uploads_are_found_and_aborted_and_no_one_elses(
    seaweed: SeaweedServer, bucket: str, transport: str
) -> None:
    """What the next apply resumes from: the records of uploads in progress, with an id or only an intent."""
    store = s3_store(transport, seaweed.endpoint, bucket).for_apply("apply-1")
    client = seaweed.client()
    started, record = store._journal.start("upload", "k/started.bin")
    # A process killed between its intent record and its upload's id: found by key, time and no parts.
    intent = "0123456789abcdef"
    intent_record = journal_key("k/intent.bin", intent)
    client.put_object(Bucket=bucket, Key=intent_record, Body=json.dumps(
        {"tool": "pixel", "bucket": bucket, "key": "k/intent.bin", "intent": intent, "upload_id": ""}).encode())
    unnamed = client.create_multipart_upload(Bucket=bucket, Key="k/intent.bin")["UploadId"]
    theirs = client.create_multipart_upload(Bucket=bucket, Key="k/theirs.bin")["UploadId"]

    found = {u.record: u for u in store.journaled_uploads()}
    assert set(found) == {record, intent_record}
    assert (found[record].key, found[record].upload_id, found[record].apply_id) == ("k/started.bin", started, "apply-1")
    assert store.abort_journaled(found[record]) is True
    assert store.abort_journaled(found[intent_record]) is True
    assert store.abort_journaled(found[record]) is False  # gone: only the record
    assert uploads(seaweed, bucket) == [("k/theirs.bin", theirs)] and unnamed != theirs
    assert records(seaweed, bucket) == []
    client.abort_multipart_upload(Bucket=bucket, Key="k/theirs.bin", UploadId=theirs)


def refusals(store: S3Store) -> list[tuple[str, str]]:
    """(error class, code) of each refused request: what the executor and the guards read of a failure."""
    attempts: list[Callable[[], Any]] = [
        lambda: store.write("k", lambda: opened(b"x"), size=1, md5=md5(b"x"), if_absent=True),
        lambda: store.write("k", lambda: opened(b"x"), size=1, md5=md5(b"x"), if_match="0" * 32),
        lambda: store.write("n", lambda: opened(b"x"), size=1, md5=md5(b"y")),
        lambda: store.delete("k", if_match="0" * 32),
        lambda: store.copy("k", "k2", md5=None, src_etag="0" * 32),
        lambda: store.copy("nothing", "k3", md5=md5(b"x")),
        lambda: store.open("nothing").__enter__(),
        lambda: store.open("k", if_match="0" * 32).__enter__().read(),
        lambda: store.open_range("k", 0, 1, if_match="0" * 32).__enter__().read(),
    ]
    out = []
    for attempt in attempts:
        try:
            attempt()
        except StoreError as exc:
            out.append((type(exc).__name__, exc.code))
        else:
            out.append(("no error", ""))
    return out


def test_refusals_are_translated_alike_on_both_transports(seaweed: SeaweedServer, bucket: str, aws_env: Any) -> None:
    found = {}
    for kind in TRANSPORTS:
        store = s3_store(kind, seaweed.endpoint, bucket)
        store.delete("k")
        store.write("k", lambda: opened(b"v"), size=1, md5=md5(b"v"), if_absent=True)
        found[kind] = refusals(store)
    assert found["direct"] == found["botocore"], found
    assert [kind for kind, _ in found["direct"]] == [
        "ObjectChanged", "ObjectChanged", "PermanentStoreError", "ObjectChanged", "ObjectChanged",
        "PermanentStoreError", "PermanentStoreError", "ObjectChanged", "ObjectChanged",
    ]
    assert found["direct"][2][1] == "BadDigest" and found["direct"][6][1] == "NoSuchKey"


def test_a_missing_bucket_is_said_alike_on_both_transports(seaweed: SeaweedServer, transport: str) -> None:
    store = s3_store(transport, seaweed.endpoint, "pixel-no-such-bucket")
    with pytest.raises(PermanentStoreError, match='bucket "pixel-no-such-bucket" does not exist') as missing:
        store.check_bucket()
    assert missing.value.code == "NoSuchBucket"
    with pytest.raises(PermanentStoreError) as refused:
        store.write("k", lambda: opened(b"x"), size=1, md5=md5(b"x"))
    assert refused.value.code == "NoSuchBucket"
