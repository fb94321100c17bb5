"""Content integrity against a real SeaweedFS server: hashes, checksums, rehash, moves, release, verify, big files."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from boto3.s3.transfer import TransferConfig

from reconciler.apply import ActionRunner, execute
from reconciler.commands.common import plan_workspace
from reconciler.model import ActionKind, S3StoreSpec
from reconciler.observe.hashcache import CACHE_FILE, RACY_WINDOW_NS, HashCache
from reconciler.plan.graph import build_graph
from reconciler.plan.render import render_text
from reconciler.stores.base import ObjectChanged, PermanentStoreError
from reconciler.stores.local import LocalStore
from reconciler.stores.s3 import MIB, S3Store
from reconciler.stores.s3.errors import S3Refusal
from tests.integration.pixelenv import Run, pixel_in_process, pixel_rss, write_specs

pytestmark = pytest.mark.integration

def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def settled_pixel(args: list[str], env: dict[str, str]) -> Run:
    """`pixel args` as if the racy window had passed since every file was written: the hash cache reads a clock
    one window ahead, so files younger than the window (which it hashes but does not cache) are cached. The test
    below needs its just-written files cached; it waited the window out (2.1 s), but ctime cannot be set back, so
    the clock is what moves. Every HashCache the CLI makes takes the default clock."""
    defaults = HashCache.__init__.__kwdefaults__
    assert defaults is not None and defaults["clock"] is time.time_ns
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(defaults, "clock", lambda: time.time_ns() + RACY_WINDOW_NS + 1)
        return pixel_in_process(args, env)


@pytest.fixture
def cli_env(seaweed: Any, tmp_path: Path) -> dict[str, str]:
    return {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache")}


@pytest.fixture
def in_process_env(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in cli_env.items():
        monkeypatch.setenv(name, value)


def specs_for(tmp_path: Path, seaweed: Any, bucket: str, root: Path, *, checksum: str = "when_required",
              **mapping: object) -> Path:
    spec_dir = write_specs(tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
                           mappings=[{"name": "data", **mapping}])
    if checksum != "when_required":
        spec = spec_dir / "specs.yaml"
        spec.write_text(spec.read_text().replace("checksum: when_required", f"checksum: {checksum}"))
    return spec_dir


def hashed_line(run: Run) -> str:
    """The observe summary the CLI logs: 'local files hashed ... read=N ... from_cache=M'."""
    return next(line for line in run.err.splitlines() if "local files hashed" in line)


def store(seaweed: Any, bucket: str, **kw: Any) -> S3Store:
    spec = S3StoreSpec("s3", bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path",
                       checksum=kw.pop("checksum", "when_supported"))
    return S3Store(spec, **kw)


@contextmanager
def opened(data: bytes) -> Iterator[BinaryIO]:
    yield io.BytesIO(data)


# --- S3 store: multipart, full-object checksums, rehash by self-copy -------------------------------------------


@pytest.mark.parametrize("checksum", ["when_supported", "when_required"])
def test_multipart_upload_records_md5_and_a_full_object_crc64nvme_where_allowed(
    seaweed: Any, bucket: str, s3_client: Any, in_process_env: None, checksum: str
) -> None:
    s3 = store(seaweed, bucket, multipart_threshold=5 * MIB, part_size=5 * MIB, checksum=checksum)
    data = os.urandom(12 * MIB + 123)
    entry = s3.write("big.bin", lambda: opened(data), size=len(data), md5=md5(data), if_absent=True)
    assert entry.etag is not None and entry.etag.endswith("-3")  # 5 + 5 + 2 MiB parts
    head = s3_client.head_object(Bucket=bucket, Key="big.bin", ChecksumMode="ENABLED")
    assert head["Metadata"]["md5"] == md5(data)
    if checksum == "when_supported":
        assert head["ChecksumType"] == "FULL_OBJECT" and head["ChecksumCRC64NVME"]
    else:  # endpoints that reject the newer checksums get none, only per-part Content-MD5
        assert "ChecksumCRC64NVME" not in head
    stat = s3.stat("big.bin")
    assert stat is not None and stat.md5 == md5(data)


def test_single_part_upload_sends_crc64nvme_only_when_the_store_allows(
    seaweed: Any, bucket: str, s3_client: Any, in_process_env: None
) -> None:
    data = b"small but checked"
    store(seaweed, bucket).write("a", lambda: opened(data), size=len(data), md5=md5(data))
    store(seaweed, bucket, checksum="when_required").write("b", lambda: opened(data), size=len(data), md5=md5(data))
    client = s3_client
    assert client.head_object(Bucket=bucket, Key="a", ChecksumMode="ENABLED").get("ChecksumCRC64NVME")
    assert not client.head_object(Bucket=bucket, Key="b", ChecksumMode="ENABLED").get("ChecksumCRC64NVME")


def test_file_changing_during_multipart_upload_leaves_nothing(
    seaweed: Any, bucket: str, s3_client: Any, in_process_env: None
) -> None:
    s3 = store(seaweed, bucket, multipart_threshold=5 * MIB, part_size=5 * MIB)
    data = os.urandom(11 * MIB)
    with pytest.raises(PermanentStoreError, match="changed while it was read"):
        s3.write("k", lambda: opened(data), size=len(data), md5=md5(b"what the plan saw"))
    client = s3_client
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_download_streams_and_verifies_into_place(
    seaweed: Any, bucket: str, s3_client: Any, tmp_path: Path, in_process_env: None
) -> None:

    data = os.urandom(3 * MIB)
    s3_client.put_object(Bucket=bucket, Key="d/x.bin", Body=data)
    s3 = store(seaweed, bucket)
    disk = LocalStore("disk", tmp_path)
    disk.write("out/x.bin", lambda: s3.open("d/x.bin"), size=len(data), md5=md5(data), if_absent=True)
    assert (tmp_path / "out" / "x.bin").read_bytes() == data
    with pytest.raises(PermanentStoreError, match=r"expected \d+ bytes md5"):
        disk.write("out/y.bin", lambda: s3.open("d/x.bin"), size=len(data), md5=md5(b"other"), if_absent=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.bin"]  # no half-written file anywhere


def test_copy_above_the_copyobject_limit_goes_part_by_part(
    seaweed: Any, bucket: str, s3_client: Any, in_process_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(12 * MIB)
    s3_client.put_object(Bucket=bucket, Key="src.bin", Body=data)
    s3 = store(seaweed, bucket, copy_part_size=5 * MIB)
    src = s3.stat("src.bin")
    assert src is not None

    def refuse(*args: Any) -> Any:
        # What AWS answers for a CopyObject source over 5 GiB; SeaweedFS has no such limit to trigger.
        raise S3Refusal("CopyObject", 400, "InvalidRequest", "The specified copy source is larger than the "
                        "maximum allowable size for a copy source: 5368709120")

    monkeypatch.setattr(s3.transport, "copy_object", refuse)
    entry = s3.copy("src.bin", "dst.bin", md5=md5(data), src_etag=src.etag, if_absent=True)
    assert entry.size == len(data)
    client = s3_client
    assert client.get_object(Bucket=bucket, Key="dst.bin")["Body"].read() == data
    head = client.head_object(Bucket=bucket, Key="dst.bin")
    assert head["Metadata"]["md5"] == md5(data) and head["ETag"].strip('"').endswith("-3")
    with pytest.raises(ObjectChanged):  # the source pin holds for every part
        s3.copy("src.bin", "dst2.bin", md5=md5(data), src_etag="0" * 32)
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


# --- Rehash ---------------------------------------------------------------------------------------------------


def test_foreign_multipart_object_is_rehashed_once_then_left_alone(
    seaweed: Any, bucket: str, s3_client: Any, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    root = tmp_path / "data"
    (root / "shards").mkdir(parents=True)
    data = os.urandom(11 * MIB)
    (root / "shards" / "s.bin").write_bytes(data)
    client = s3_client
    # As the aws cli or plain boto3 would: multipart, no md5 anywhere.
    client.upload_fileobj(io.BytesIO(data), bucket, "shards/s.bin",
                          Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
    etag = client.head_object(Bucket=bucket, Key="shards/s.bin")["ETag"]
    assert etag.strip('"').endswith("-3") and "md5" not in client.head_object(Bucket=bucket, Key="shards/s.bin")[
        "Metadata"]
    specs = specs_for(tmp_path, seaweed, bucket, root, **{"from": "disk:shards", "to": "s3:shards/"})

    first = pixel_in_process(["plan", "--detailed-exitcode", "--specs", str(specs)], cli_env)
    assert first.code == 2, first.err
    assert "~ shards/s.bin  (rehash, 11.0 MiB: md5 unknown" in first.out
    applied = pixel_in_process(["apply", "--auto-approve", "--specs", str(specs)], cli_env)
    assert applied.code == 0, applied.out + applied.err
    head = client.head_object(Bucket=bucket, Key="shards/s.bin")
    assert head["Metadata"]["md5"] == md5(data)
    assert head["ETag"] == etag  # the in-place copy kept the object; only its metadata changed
    again = pixel_in_process(["plan", "--detailed-exitcode", "--specs", str(specs)], cli_env)
    assert again.code == 0, again.out + again.err
    assert again.out.strip() == "No changes. Storage matches the specs."


def test_rehash_keeps_the_objects_other_metadata_and_content_type(
    seaweed: Any, bucket: str, s3_client: Any, in_process_env: None
) -> None:
    client = s3_client
    data = os.urandom(6 * MIB)
    client.upload_fileobj(io.BytesIO(data), bucket, "j/x.jsonl",
                          ExtraArgs={"ContentType": "application/jsonl", "Metadata": {"owner": "team-a"}},
                          Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
    s3 = store(seaweed, bucket)
    before = s3.stat("j/x.jsonl")
    assert before is not None and before.md5 is None
    s3.copy("j/x.jsonl", "j/x.jsonl", md5=md5(data), src_etag=before.etag)
    head = client.head_object(Bucket=bucket, Key="j/x.jsonl")
    assert head["Metadata"] == {"owner": "team-a", "md5": md5(data)}
    assert head["ContentType"] == "application/jsonl"


def test_rclone_md5chksum_metadata_is_honoured(seaweed: Any, bucket: str, s3_client: Any, tmp_path: Path,
                                               cli_env: dict[str, str]) -> None:
    root = tmp_path / "data"
    (root / "r").mkdir(parents=True)
    data = os.urandom(6 * MIB)
    (root / "r" / "f.bin").write_bytes(data)
    rclone_md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3_client.upload_fileobj(io.BytesIO(data), bucket, "r/f.bin",
                                    ExtraArgs={"Metadata": {"md5chksum": rclone_md5}},
                                    Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
    specs = specs_for(tmp_path, seaweed, bucket, root, **{"from": "disk:r", "to": "s3:r/"})
    result = pixel_in_process(["plan", "--detailed-exitcode", "--specs", str(specs)], cli_env)
    assert result.code == 0, result.out + result.err


# --- The hash cache through the CLI ----------------------------------------------------------------------------


@pytest.mark.slow
def test_same_size_edit_with_restored_mtime_is_caught_and_rehash_all_ignores_the_cache(
    seaweed: Any, bucket: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    root = tmp_path / "data"
    (root / "d").mkdir(parents=True)
    a, b = root / "d" / "a.jsonl", root / "d" / "b.jsonl"
    a.write_bytes(b'{"id": 1}\n')
    b.write_bytes(b'{"id": 2}\n')
    specs = specs_for(tmp_path, seaweed, bucket, root, **{"from": "disk:d", "to": "s3:d/"})
    args = ["--specs", str(specs)]
    applied = settled_pixel(["apply", "--auto-approve", *args], cli_env)
    assert applied.code == 0, applied.err
    assert "read=2" in hashed_line(applied)

    warm = settled_pixel(["plan", "--detailed-exitcode", *args], cli_env)
    assert warm.code == 0, warm.out + warm.err
    assert "read=0" in hashed_line(warm) and "from_cache=2" in hashed_line(warm)

    st = a.stat()
    a.write_bytes(b'{"id": 9}\n')  # same size
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))  # old mtime restored; ctime moved on regardless
    assert (a.stat().st_size, a.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    edited = settled_pixel(["plan", *args], cli_env)
    assert "~ d/a.jsonl" in edited.out and f"md5 {md5(a.read_bytes())[:8]}…" in edited.out
    assert "read=1" in hashed_line(edited) and "from_cache=1" in hashed_line(edited)
    assert settled_pixel(["apply", "--auto-approve", *args], cli_env).code == 0

    # Poison b's cache row: a plan that trusts the cache now sees a change, --rehash-all reads the truth.
    with sqlite3.connect(tmp_path / "cache" / CACHE_FILE) as conn:
        changed = conn.execute("UPDATE hashes SET md5 = ? WHERE path = ?", ("0" * 32, str(b))).rowcount
    assert changed == 1
    trusting = settled_pixel(["plan", *args], cli_env)
    assert "~ d/b.jsonl" in trusting.out
    rehashed = settled_pixel(["plan", "--detailed-exitcode", "--rehash-all", *args], cli_env)
    assert rehashed.code == 0, rehashed.out + rehashed.err
    assert "read=2" in hashed_line(rehashed) and "from_cache=0" in hashed_line(rehashed)
    # ... and what it read replaced the poisoned row.
    assert settled_pixel(["plan", "--detailed-exitcode", *args], cli_env).code == 0


# --- Renames become server-side moves ---------------------------------------------------------------------------


@pytest.mark.slow
def test_renaming_1000_files_is_planned_as_moves_and_uploads_nothing(
    seaweed: Any, bucket: str, s3_client: Any, tmp_path: Path, in_process_env: None
) -> None:
    root = tmp_path / "data"
    old = root / "set" / "v1"
    old.mkdir(parents=True)
    for i in range(1000):
        (old / f"{i:04}.json").write_bytes(b'{"i": %d}\n' % i)
    specs = specs_for(tmp_path, seaweed, bucket, root, prune=True, **{"from": "disk:set", "to": "s3:set/"})
    ws, first = plan_workspace(specs, 16)
    assert [a.kind for a in first.actions].count(ActionKind.UPLOAD) == 1000
    assert execute(build_graph(first), ActionRunner(ws.stores), parallelism=16).ok

    old.rename(root / "set" / "v2")
    ws, renamed = plan_workspace(specs, 16)
    kinds = [a.kind for a in renamed.actions]
    assert kinds.count(ActionKind.MOVE) == 1000 and kinds.count(ActionKind.DELETE) == 1000, renamed.errors
    assert len(kinds) == 2000
    assert "  + set/v1/0042.json => set/v2/0042.json  (move" in render_text(renamed, ws.desired)
    runner = ActionRunner(ws.stores)
    result = execute(build_graph(renamed), runner, parallelism=16)
    assert result.ok, [o.error for o in result.failed][:3]
    assert runner.bytes_uploaded == 0
    assert runner.bytes_copied == sum(len(b'{"i": %d}\n' % i) for i in range(1000))
    client = s3_client
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    assert len(keys) == 1000 and all(k.startswith("set/v2/") for k in keys)
    assert client.head_object(Bucket=bucket, Key="set/v2/0042.json")["Metadata"]["md5"] == md5(b'{"i": 42}\n')
    _, after = plan_workspace(specs, 16)
    assert after.actions == ()


def test_swapped_contents_go_through_a_temporary_key(
    seaweed: Any, bucket: str, s3_client: Any, tmp_path: Path, in_process_env: None
) -> None:
    root = tmp_path / "data"
    (root / "s").mkdir(parents=True)
    (root / "s" / "a").write_bytes(b"content A")
    (root / "s" / "b").write_bytes(b"content B")
    specs = specs_for(tmp_path, seaweed, bucket, root, **{"from": "disk:s", "to": "s3:s/"})
    ws, first = plan_workspace(specs, 4)
    assert execute(build_graph(first), ActionRunner(ws.stores)).ok
    (root / "s" / "a").write_bytes(b"content B")
    (root / "s" / "b").write_bytes(b"content A")
    ws, swap = plan_workspace(specs, 4)
    assert sorted(a.kind.value for a in swap.actions) == ["copy", "move", "move"]
    runner = ActionRunner(ws.stores)
    assert execute(build_graph(swap), runner).ok
    assert runner.bytes_uploaded == 0
    client = s3_client
    assert client.get_object(Bucket=bucket, Key="s/a")["Body"].read() == b"content B"
    assert client.get_object(Bucket=bucket, Key="s/b")["Body"].read() == b"content A"
    assert sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]) == ["s/a", "s/b"]


# --- Verified release of local copies ----------------------------------------------------------------------------


def test_release_local_only_after_a_verified_upload(
    seaweed: Any, bucket: str, s3_client: Any, tmp_path: Path, in_process_env: None
) -> None:
    root = tmp_path / "data"
    (root / "final").mkdir(parents=True)
    ok, doomed = root / "final" / "train-0.jsonl", root / "final" / "train-1.jsonl"
    ok.write_bytes(b'{"split": "train", "n": 0}\n')
    doomed.write_bytes(b'{"split": "train", "n": 1}\n')
    specs = specs_for(tmp_path, seaweed, bucket, root, release_local=True,
                      **{"from": "disk:final", "to": "s3:final_dataset/"})
    ws, plan = plan_workspace(specs, 4)
    assert sorted(a.kind.value for a in plan.actions) == [
        "release-local", "release-local", "upload", "upload", "verify", "verify"]
    # The injected failure: another writer creates train-1 between plan and apply, so its
    # If-None-Match upload gets a real 412 from the server.
    client = s3_client
    client.put_object(Bucket=bucket, Key="final_dataset/train-1.jsonl", Body=b"someone else's bytes")
    result = execute(build_graph(plan), ActionRunner(ws.stores), parallelism=4)
    failed = {o.action.id: o for o in result.failed}
    assert list(failed) == ["upload:s3:final_dataset/train-1.jsonl"]
    skipped = sorted(o.action.id for o in result.skipped)
    assert skipped == ["release-local:disk:final/train-1.jsonl", "verify:s3:final_dataset/train-1.jsonl"]
    assert doomed.read_bytes() == b'{"split": "train", "n": 1}\n'  # still here
    assert not ok.exists()  # its twin was uploaded, verified and released
    body = client.get_object(Bucket=bucket, Key="final_dataset/train-0.jsonl")["Body"].read()
    assert body == b'{"split": "train", "n": 0}\n'


# --- pixel verify --------------------------------------------------------------------------------------------------


def test_verify_reports_mismatches_and_download_recomputes(
    seaweed: Any, bucket: str, s3_client: Any, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    root = tmp_path / "data"
    (root / "v").mkdir(parents=True)
    (root / "v" / "good.txt").write_bytes(b"good")
    specs = specs_for(tmp_path, seaweed, bucket, root, **{"from": "disk:v", "to": "s3:v/"})
    args = ["--specs", str(specs)]
    assert pixel_in_process(["apply", "--auto-approve", *args], cli_env).code == 0
    clean = pixel_in_process(["verify", "--download", *args], cli_env)
    assert clean.code == 0, clean.out + clean.err
    assert "Verified 1 object(s) (downloaded 4 B): 0 mismatch(es), 0 without a recorded md5." in clean.out

    client = s3_client
    # Recorded md5 contradicts the single-part ETag: caught from the HEAD alone.
    client.put_object(Bucket=bucket, Key="v/lying.txt", Body=b"real", Metadata={"md5": md5(b"fake")})
    # Multipart ETag hides the lie: only --download can tell.
    data = os.urandom(6 * MIB)
    client.upload_fileobj(io.BytesIO(data), bucket, "v/sly.bin", ExtraArgs={"Metadata": {"md5": md5(b"nope")}},
                          Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
    heads = pixel_in_process(["verify", *args], cli_env)
    assert heads.code == 1
    assert f"✗ s3:v/lying.txt: metadata records md5 {md5(b'fake')} but the ETag is md5 {md5(b'real')}" in heads.out
    assert "sly.bin" not in heads.out
    full = pixel_in_process(["verify", "--download", *args], cli_env)
    assert full.code == 1
    assert f"✗ s3:v/sly.bin: recorded md5 {md5(b'nope')}, content md5 {md5(data)}" in full.out
    assert "2 mismatch(es)" in full.out and "do not match their recorded md5" in full.err


# --- Large files: flat memory --------------------------------------------------------------------------------------


# The object is well above the bound, so a path that held it (or any share of it that grows with it) in memory
# fails; the bound is pixel's own: the interpreter plus a fixed number of parts in flight, whatever the size.
BIG = 320 * MIB
RSS_BOUND_MIB = 200


@pytest.mark.slow
def test_a_320_mib_upload_and_download_stay_under_200_mib_rss(
    seaweed: Any, bucket: str, s3_client: Any, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    root = tmp_path / "data"
    (root / "up").mkdir(parents=True)
    (root / "down").mkdir()
    big = root / "up" / "huge.bin"
    with open(big, "wb") as f:
        f.truncate(BIG)  # sparse: zeros, no disk blocks
    zeros = bytes(8 * MIB)
    digest = hashlib.md5()
    for _ in range(BIG // len(zeros)):
        digest.update(zeros)
    specs = write_specs(
        tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
        mappings=[
            {"name": "push", "from": "disk:up", "to": "s3:big/"},
        ],
    )
    spec = specs / "specs.yaml"
    spec.write_text(spec.read_text().replace("checksum: when_required", "checksum: when_supported"))
    up = pixel_rss(["apply", "--auto-approve", "--specs", str(specs)], cli_env)
    assert up.code == 0, up.err
    head = s3_client.head_object(Bucket=bucket, Key="big/huge.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == BIG and head["Metadata"]["md5"] == digest.hexdigest()
    assert head["ChecksumType"] == "FULL_OBJECT"

    spec.write_text(spec.read_text().replace("from: disk:up", "from: disk:down") + "    authority: s3\n")
    down = pixel_rss(["apply", "--auto-approve", "--specs", str(specs)], cli_env)
    assert down.code == 0, down.err
    got = root / "down" / "huge.bin"
    assert got.stat().st_size == BIG
    assert sorted(p.name for p in (root / "down").iterdir()) == ["huge.bin"]
    print(f"{BIG // MIB} MiB peak RSS: upload {up.max_rss_kib // 1024} MiB, download {down.max_rss_kib // 1024} MiB")
    assert BIG > 1.5 * RSS_BOUND_MIB * MIB  # else holding the object whole could pass
    assert up.max_rss_kib < RSS_BOUND_MIB * 1024, f"upload peak RSS {up.max_rss_kib / 1024:.0f} MiB"
    assert down.max_rss_kib < RSS_BOUND_MIB * 1024, f"download peak RSS {down.max_rss_kib / 1024:.0f} MiB"
