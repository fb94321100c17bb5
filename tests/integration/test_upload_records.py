"""Records of pixel's own multipart uploads (`.pixel/uploads/`) on SeaweedFS.

Each multipart upload or copy pixel starts is recorded in the bucket before
its first part and forgotten once it is completed or aborted, so a later apply
can abort exactly pixel's leftovers. The records are never data: no listing,
plan, download or prune ever sees them, even for a mapping of the whole bucket.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from reconciler.model import S3StoreSpec
from reconciler.stores.base import PermanentStoreError
from reconciler.stores.s3 import MIB, UPLOAD_JOURNAL_PREFIX, S3Store, journal_key
from reconciler.stores.s3.botocore_transport import BotocoreTransport
from tests.integration.pixelenv import pixel_in_process, write_specs

pytestmark = pytest.mark.integration


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@contextmanager
def opened(data: bytes) -> Iterator[BinaryIO]:
    yield io.BytesIO(data)


def store(seaweed: Any, bucket: str, **kw: Any) -> S3Store:
    spec = S3StoreSpec("s3", bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path",
                       checksum="when_required")
    return S3Store(spec, client=seaweed.client(), **kw)


def botocore_client(s3: S3Store) -> Any:
    """The injected client the store sends every request through (the botocore transport)."""
    assert isinstance(s3.transport, BotocoreTransport)
    return s3.transport.client


def records(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=UPLOAD_JOURNAL_PREFIX).get("Contents", [])]


def test_a_multipart_upload_is_recorded_while_in_progress_and_forgotten_after(seaweed: Any, bucket: str) -> None:
    s3 = store(
        seaweed, bucket, multipart_threshold=5 * MIB, part_size=5 * MIB, copy_part_size=5 * MIB, apply_id="apply-1234"
    )
    client = seaweed.client()
    seen: list[dict[str, Any]] = []
    upload_part = botocore_client(s3).upload_part

    def spying_upload_part(**kwargs: Any) -> Any:
        # Every part goes up with the record already in the bucket, holding the upload's id.
        (record,) = records(client, bucket)
        body = json.loads(client.get_object(Bucket=bucket, Key=record)["Body"].read())
        assert body["upload_id"] == kwargs["UploadId"] and record == journal_key(kwargs["Key"], body["intent"])
        seen.append(body)
        return upload_part(**kwargs)

    botocore_client(s3).upload_part = spying_upload_part
    data = os.urandom(11 * MIB)
    s3.write("d/big.bin", lambda: opened(data), size=len(data), md5=md5(data), if_absent=True)
    assert len(seen) == 3
    assert {(r["key"], r["apply_id"], r["tool"], r["bucket"]) for r in seen} == {
        ("d/big.bin", "apply-1234", "pixel", bucket)
    }
    assert records(client, bucket) == []  # completed: forgotten

    # Failed (the file changed while read): aborted and forgotten, nothing left anywhere.
    with pytest.raises(PermanentStoreError, match="changed while it was read"):
        s3.write("d/bad.bin", lambda: opened(data), size=len(data), md5=md5(b"what the plan saw"))
    assert records(client, bucket) == []
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")

    # A server-side copy done part by part is recorded the same way.
    s3._multipart_copy("d/big.bin", "d/copy.bin", md5=md5(data), src_etag=None, when={})
    assert records(client, bucket) == []
    assert client.head_object(Bucket=bucket, Key="d/copy.bin")["ContentLength"] == len(data)


def test_an_upload_whose_record_cannot_be_written_is_aborted_at_once(seaweed: Any, bucket: str) -> None:
    s3 = store(seaweed, bucket, multipart_threshold=5 * MIB, part_size=5 * MIB)
    client = seaweed.client()
    put_object = botocore_client(s3).put_object

    def refuse_records(**kwargs: Any) -> Any:
        if kwargs["Key"].startswith(UPLOAD_JOURNAL_PREFIX):
            raise PermanentStoreError("record upload: 403 AccessDenied", code="AccessDenied")
        return put_object(**kwargs)

    botocore_client(s3).put_object = refuse_records
    data = os.urandom(6 * MIB)
    with pytest.raises(PermanentStoreError, match="AccessDenied"):
        s3.write("d/big.bin", lambda: opened(data), size=len(data), md5=md5(data))
    # Unrecorded, no later apply could tell it from another tool's upload: it must not outlive the failure.
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)


def test_leftover_records_are_read_and_aborted_exactly(seaweed: Any, bucket: str) -> None:
    s3 = store(seaweed, bucket)
    client = seaweed.client()
    ours, record = s3._journal.start("upload", "k/ours.bin")
    theirs = client.create_multipart_upload(Bucket=bucket, Key="k/ours.bin")["UploadId"]  # same key, other tool
    client.put_object(Bucket=bucket, Key=f"{UPLOAD_JOURNAL_PREFIX}junk.json", Body=b"not json")
    found = {u.record: u for u in s3.journaled_uploads()}
    assert set(found) == {record, f"{UPLOAD_JOURNAL_PREFIX}junk.json"}
    assert found[record].key == "k/ours.bin" and found[record].upload_id == ours and not found[record].problem
    assert "not a pixel upload record" in found[f"{UPLOAD_JOURNAL_PREFIX}junk.json"].problem

    assert s3.abort_journaled(found[record]) is True
    assert s3.abort_journaled(found[record]) is False  # already gone: only the (absent) record is removed
    left = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["UploadId"] for u in left] == [theirs]
    assert records(client, bucket) == [f"{UPLOAD_JOURNAL_PREFIX}junk.json"]  # an unreadable record is left alone
    with pytest.raises(PermanentStoreError, match="not a pixel upload record"):
        s3.abort_journaled(found[f"{UPLOAD_JOURNAL_PREFIX}junk.json"])
    client.abort_multipart_upload(Bucket=bucket, Key="k/ours.bin", UploadId=theirs)


@pytest.mark.parametrize("authority", ["local", "s3"])
def test_records_are_never_data_even_for_a_whole_bucket_mapping(
    seaweed: Any, bucket: str, tmp_path: Path, authority: str
) -> None:
    root = tmp_path / "data"
    (root / "all").mkdir(parents=True)
    (root / "all" / "a.txt").write_bytes(b"a")
    client = seaweed.client()
    client.put_object(Bucket=bucket, Key="a.txt", Body=b"a", Metadata={"md5": md5(b"a")})
    s3 = store(seaweed, bucket)
    upload_id, record = s3._journal.start("upload", "b.bin")  # what a killed apply leaves behind
    assert [e.key for e in s3.list("")] == ["a.txt"]
    assert list(s3.list(UPLOAD_JOURNAL_PREFIX)) == []
    assert list(s3.list(".pixel/")) == []

    specs = write_specs(tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
                        mappings=[{"name": "all", "from": "disk:all", "to": '"s3:"', "prune": True,
                                   "authority": authority}])
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    planned = pixel_in_process(["plan", "--detailed-exitcode", "--specs", str(specs)], env)
    assert planned.code == 0, planned.out + planned.err  # no download, upload or (refused) prune of the record
    assert "No changes" in planned.out and ".pixel" not in planned.out
    verified = pixel_in_process(["verify", "--specs", str(specs)], env)
    assert verified.code == 0 and "Verified 1 object(s)" in verified.out, verified.out + verified.err
    assert sorted(p.name for p in (root / "all").iterdir()) == ["a.txt"]
    assert records(client, bucket) == [record]
    client.abort_multipart_upload(Bucket=bucket, Key="b.bin", UploadId=upload_id)
