"""A big upload md5-hashes no byte the plan already hashed, against a real SeaweedFS.

The plan's md5 goes up as the object's md5 without the file being hashed again only where the hash cache
holds that md5 for the file's exact identity (apply/vouched.py). Each part is still checked by the server
against its own checksum; a file edited meanwhile (its size kept), or an md5 nothing vouches for, is
hashed as before or refused: never an object recorded under an md5 that is not its own.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from reconciler.apply.runner import ActionRunner
from reconciler.apply.vouched import CachedMd5s, VouchingFile
from reconciler.model import Action, ActionKind, Change, ObjectRef, Precondition, S3StoreSpec
from reconciler.observe.hashcache import FileKey, HashCache
from reconciler.stores.base import ObjectChanged, PermanentStoreError
from reconciler.stores.local import LocalStore
from reconciler.stores.s3 import MIB, S3Store
from reconciler.stores.s3 import upload as upload_module
from reconciler.stores.s3.direct.raw import DirectTransport
from reconciler.stores.s3.transport import Buffer
from reconciler.stores.s3.upload import crc64_b64, crc64nvme

pytestmark = pytest.mark.integration

PART = 5 * MIB
LONG_AGO_NS = 1_000_000_000_000_000_000  # an mtime far from now: an edit now always moves it


@pytest.fixture(autouse=True)
def env(seaweed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)


def s3_store(seaweed: Any, bucket: str, checksum: str, **kw: Any) -> S3Store:
    spec = S3StoreSpec("s3", bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path",
                       checksum=checksum)
    return S3Store(spec, multipart_threshold=PART, part_size=PART, **kw)


def big_file(path: Path, parts: int, tail: int) -> bytes:
    data = b"".join(bytes([i + 1]) * 64 + os.urandom(PART - 64) for i in range(parts)) + os.urandom(tail)
    path.write_bytes(data)
    os.utime(path, ns=(LONG_AGO_NS, LONG_AGO_NS))
    return data


def cached(tmp_path: Path, path: Path, md5: str) -> CachedMd5s:
    """A hash cache holding `md5` for the file's identity now, as a plan that hashed it leaves it."""
    cache_file = tmp_path / "hashes.sqlite"
    # The clock far ahead: the rows are not racy, as a file written a while before the plan's hash is not.
    with HashCache(cache_file, clock=lambda: 2 * LONG_AGO_NS) as cache:
        assert cache.remember(FileKey.of(str(path), os.stat(path)), md5)
    return CachedMd5s(lambda: HashCache(cache_file))


class Md5Count:
    """md5 bytes hashed by the upload module (whole file and per part alike)."""

    def __init__(self) -> None:
        self.hashed = 0

    def md5(self, data: Any = b"") -> Any:
        counter = self

        class Counting:
            def __init__(self) -> None:
                self._digest = hashlib.md5()
                self.update(data)

            def update(self, more: Any) -> None:
                counter.hashed += memoryview(more).nbytes
                self._digest.update(more)

            def digest(self) -> bytes:
                return self._digest.digest()

            def hexdigest(self) -> str:
                return self._digest.hexdigest()

        return Counting()


@pytest.fixture
def md5s(monkeypatch: pytest.MonkeyPatch) -> Md5Count:
    count = Md5Count()

    class Shim:
        md5 = staticmethod(count.md5)

    monkeypatch.setattr(upload_module, "hashlib", Shim)
    return count


def multipart_etag(data: bytes) -> str:
    digests = [hashlib.md5(data[i : i + PART]).digest() for i in range(0, len(data), PART)]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def nothing_left(seaweed: Any, bucket: str) -> None:
    client = seaweed.client()
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def upload_action(local: LocalStore, key: str, size: int, md5: str) -> Action:
    here = local.stat(key)
    assert here is not None
    return Action(
        id="upload-1", kind=ActionKind.UPLOAD, change=Change.CREATE, mapping="m", target=ObjectRef("s3", key),
        reason="new", source=ObjectRef("local", key), size=size, md5=md5,
        precondition=Precondition(target_absent=True, source_etag=here.etag),
    )


@pytest.mark.parametrize(("checksum", "md5_passes"), [("when_supported", 0), ("when_required", 1)])
def test_an_apply_reads_a_big_file_once_and_hashes_it_only_per_part(
    seaweed: Any, bucket: str, tmp_path: Path, md5s: Md5Count, checksum: str, md5_passes: int
) -> None:
    # when_supported: the parts carry CRC64NVME, so no md5 at all; when_required: Content-MD5 per part only.
    root = tmp_path / "tree"
    root.mkdir()
    data = big_file(root / "big.bin", 3, 1234)
    md5 = hashlib.md5(data).hexdigest()
    local, s3 = LocalStore("local", root), s3_store(seaweed, bucket, checksum)
    read: list[int] = []
    runner = ActionRunner({"local": local, "s3": s3}, on_bytes=lambda _, n: read.append(n))
    runner.cached_md5s = cached(tmp_path, root / "big.bin", md5)
    runner(upload_action(local, "big.bin", len(data), md5))
    assert sum(read) == len(data), "the file is read once"
    assert md5s.hashed == md5_passes * len(data)
    got = seaweed.client().get_object(Bucket=bucket, Key="big.bin")
    assert got["Body"].read() == data
    assert got["Metadata"]["md5"] == md5
    if checksum == "when_required":
        assert got["ETag"].strip('"') == multipart_etag(data), "the parts' own md5s, checked by the server"
    else:  # the whole file's CRC64NVME, combined from the parts' and checked by the server at the complete
        head = seaweed.client().head_object(Bucket=bucket, Key="big.bin", ChecksumMode="ENABLED")
        assert head["ChecksumCRC64NVME"] == crc64_b64(crc64nvme(data))


def test_without_a_cached_md5_the_upload_hashes_the_file_as_before(
    seaweed: Any, bucket: str, tmp_path: Path, md5s: Md5Count
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    data = big_file(root / "big.bin", 2, 99)
    md5 = hashlib.md5(data).hexdigest()
    local = LocalStore("local", root)
    runner = ActionRunner({"local": local, "s3": s3_store(seaweed, bucket, "when_supported")})
    runner.cached_md5s = CachedMd5s(lambda: HashCache(tmp_path / "empty.sqlite"))
    runner(upload_action(local, "big.bin", len(data), md5))
    assert md5s.hashed == len(data)
    assert seaweed.client().get_object(Bucket=bucket, Key="big.bin")["Metadata"]["md5"] == md5


@contextmanager
def vouching(path: Path, md5: str, known: CachedMd5s) -> Iterator[BinaryIO]:
    with open(path, "rb") as f:
        yield VouchingFile(f, str(path), md5, known)  # type: ignore[misc]  # a BinaryIO by delegation


@pytest.mark.parametrize("checksum", ["when_supported", "when_required"])
def test_a_file_edited_during_the_upload_with_its_size_kept_is_refused_and_aborted(
    seaweed: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checksum: str
) -> None:
    path = tmp_path / "moving.bin"
    data = big_file(path, 3, 17)
    md5 = hashlib.md5(data).hexdigest()
    known = cached(tmp_path, path, md5)
    original = DirectTransport.upload_part
    edited: list[int] = []

    def editing(
        raw: DirectTransport, key: str, upload_id: str, number: int, body: Buffer, params: Mapping[str, Any]
    ) -> str:
        # The first part to go: two buffers for four parts, so the last read waits for a send to finish,
        # and the edit lands before the upload's last look at the file.
        if not edited:
            edited.append(number)
            with open(path, "r+b") as other:
                other.seek(3 * PART + 1)
                other.write(b"edited meanwhile")
        return original(raw, key, upload_id, number, body, params)

    monkeypatch.setattr(DirectTransport, "upload_part", editing)
    s3 = s3_store(seaweed, bucket, checksum, max_parts_in_memory=2, part_concurrency=2)
    with pytest.raises(ObjectChanged, match="changed while it was read"):
        s3.write("k", lambda: vouching(path, md5, known), size=len(data), md5=md5)
    assert edited
    nothing_left(seaweed, bucket)


def test_a_file_edited_after_its_hash_with_its_size_kept_is_hashed_again_and_refused(
    seaweed: Any, bucket: str, tmp_path: Path
) -> None:
    path = tmp_path / "edited.bin"
    data = big_file(path, 2, 5)
    md5 = hashlib.md5(data).hexdigest()
    known = cached(tmp_path, path, md5)
    with open(path, "r+b") as other:  # after the plan hashed it, before the upload opens it
        other.write(b"X")
    s3 = s3_store(seaweed, bucket, "when_supported")
    with pytest.raises(PermanentStoreError, match="changed while it was read") as refused:
        s3.write("k", lambda: vouching(path, md5, known), size=len(data), md5=md5)
    assert refused.value.code == "BadDigest"
    nothing_left(seaweed, bucket)


def test_a_planned_md5_the_cache_does_not_hold_is_not_trusted(seaweed: Any, bucket: str, tmp_path: Path) -> None:
    # A saved plan edited by hand: the file is as it was, but the md5 the plan names is not its own.
    path = tmp_path / "same.bin"
    data = big_file(path, 2, 5)
    known = cached(tmp_path, path, hashlib.md5(data).hexdigest())
    claimed = hashlib.md5(b"something else").hexdigest()
    s3 = s3_store(seaweed, bucket, "when_required")
    with pytest.raises(PermanentStoreError, match="changed while it was read"):
        s3.write("k", lambda: vouching(path, claimed, known), size=len(data), md5=claimed)
    nothing_left(seaweed, bucket)
