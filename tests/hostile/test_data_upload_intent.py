"""A multipart upload started right before a kill -9 is aborted by the next apply, and no other tool's is.

pixel used to record an upload only after CreateMultipartUpload returned: a process killed in between
left an upload nobody would ever abort. The record is now written first (an intent, no id yet); the
next apply matches it to the part-less upload of that key started right after the record.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from reconciler.model import S3StoreSpec
from reconciler.stores.s3 import UPLOAD_JOURNAL_PREFIX, S3Store
from reconciler.stores.s3.journal import CLOCK_SLACK_S
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

KEY = "k/big.bin"

CHILD = textwrap.dedent(
    """
    import hashlib, io, os, signal, sys
    from reconciler.model import S3StoreSpec
    from reconciler.stores.s3 import MIB, S3Store

    spec = S3StoreSpec("s3", sys.argv[1], endpoint=sys.argv[2], region="us-east-1", addressing_style="path",
                       checksum="when_required")
    s3 = S3Store(spec, multipart_threshold=5 * MIB, part_size=5 * MIB)
    create = s3.transport.create_multipart_upload

    def create_then_die(key, params):
        create(key, params)
        os.kill(os.getpid(), signal.SIGKILL)  # the server has the upload; pixel never saw its id

    s3.transport.create_multipart_upload = create_then_die
    data = b"x" * (6 * MIB)
    s3.write(sys.argv[3], lambda: io.BytesIO(data), size=len(data), md5=hashlib.md5(data).hexdigest())
    """
)


def uploads(client: Any, bucket: str) -> dict[str, str]:
    return {u["UploadId"]: u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}


def test_an_upload_killed_before_its_id_was_recorded_is_aborted_and_no_other(
    seaweed: Any, bucket: str, s3_client: Any
) -> None:
    earlier = s3_client.create_multipart_upload(Bucket=bucket, Key=KEY)["UploadId"]  # another tool, before
    elsewhere = s3_client.create_multipart_upload(Bucket=bucket, Key="k/other.bin")["UploadId"]
    # "Before the record" on the server's whole-second clock: wait until that clock stands past the slack
    # after `earlier` began, as a fresh object's LastModified shows it, so the record is written later still.
    (began,) = [u["Initiated"] for u in s3_client.list_multipart_uploads(Bucket=bucket)["Uploads"]
                if u["UploadId"] == earlier]

    def server_clock_past_the_slack() -> bool:
        s3_client.put_object(Bucket=bucket, Key="clock-probe", Body=b"")
        now = s3_client.head_object(Bucket=bucket, Key="clock-probe")["LastModified"]
        return bool(now.timestamp() > began.timestamp() + CLOCK_SLACK_S)

    wait_for(server_clock_past_the_slack, "the server's clock past the slack after the other tool's upload")

    child = subprocess.run([sys.executable, "-c", CHILD, bucket, seaweed.endpoint, KEY],
                           env={**os.environ, **seaweed.env()}, capture_output=True, text=True, timeout=120)
    assert child.returncode == -9, child.stderr
    (killed,) = set(uploads(s3_client, bucket)) - {earlier, elsewhere}
    # Another tool uploading the same key right after, already with a part: not pixel's (pixel sends none
    # before the id is recorded).
    busy = s3_client.create_multipart_upload(Bucket=bucket, Key=KEY)["UploadId"]
    s3_client.upload_part(Bucket=bucket, Key=KEY, UploadId=busy, PartNumber=1, Body=b"y" * 1024)

    spec = S3StoreSpec("s3", bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path",
                       checksum="when_required")
    store = S3Store(spec, client=seaweed.client())
    (intent,) = store.journaled_uploads()
    assert intent.key == KEY and not intent.upload_id and not intent.problem
    assert store.abort_journaled(intent) is True

    assert set(uploads(s3_client, bucket)) == {earlier, elsewhere, busy}
    assert killed not in uploads(s3_client, bucket)
    assert not s3_client.list_objects_v2(Bucket=bucket, Prefix=UPLOAD_JOURNAL_PREFIX).get("Contents")
    for upload_id, key in ((earlier, KEY), (elsewhere, "k/other.bin"), (busy, KEY)):
        s3_client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
