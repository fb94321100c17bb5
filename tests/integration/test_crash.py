"""Crash safety on SeaweedFS: kill -9 apply at random points; nothing is lost, nothing is half-written.

One apply of 800 uploads, 200 server-side moves, 80 deletes and 120
downloads (every kind of action, many of each between two kills) is killed
with SIGKILL again and again (at least 10 kills, each once it holds the lock
and has carried out a random number of its actions). After every kill:

- every byte that existed before is still where it should be: the local tree
  is untouched (md5 per file), every moved object's content is at its old or
  its new key, objects not yet deleted are intact;
- no final path holds a partial object or file (S3 ETag = md5 of the intended
  content; local downloads match the bucket by md5);
- the next `pixel plan` shows exactly the remaining work (computed here from
  what is actually stored).

Finally an uninterrupted apply converges and the plan after it is empty.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import pytest

from reconciler.model import S3StoreSpec
from reconciler.stores.local import is_temp_name
from reconciler.stores.s3 import S3Store
from tests.integration.pixelenv import PIXEL, Run, pixel_in_process, write_specs
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UPLOADS, MOVES, DELETES, DOWNLOADS = 800, 200, 80, 120
REFILL = 120  # new files to upload when an apply finished before its kill
KILLS = 10
GUARDS = ["--max-delete", "1000", "--allow-mass-delete"]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def blob(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(64 + n % 300)


@pytest.fixture
def world(tmp_path: Path, seaweed: Any, bucket: str) -> dict[str, Any]:
    rng = random.Random(5)
    root = tmp_path / "data"
    client = seaweed.client()
    local: dict[str, str] = {}  # path relative to root -> md5: the original local tree
    moved: dict[str, str] = {}  # md5 -> new key, for content that must survive at old or new key
    remote: dict[str, str] = {}  # key -> md5: the original bucket
    for sub in ("raw/up", "raw/new", "pulled"):
        (root / sub).mkdir(parents=True)
    for i in range(UPLOADS):
        data = blob(rng, i)
        (root / f"raw/up/u{i:04}.bin").write_bytes(data)
        local[f"raw/up/u{i:04}.bin"] = md5(data)
    puts: list[tuple[str, bytes]] = []
    for i in range(MOVES):
        data = rng.randbytes(100 + i)  # distinct sizes: distinct content
        (root / f"raw/new/m{i:04}.bin").write_bytes(data)
        local[f"raw/new/m{i:04}.bin"] = md5(data)
        puts.append((f"datasets/raw/old/m{i:04}.bin", data))
        moved[md5(data)] = f"datasets/raw/new/m{i:04}.bin"
    puts += [(f"datasets/raw/gone/d{i:04}.bin", b"delete me %d" % i) for i in range(DELETES)]
    puts += [(f"models/p{i:04}.bin", blob(rng, i + 7)) for i in range(DOWNLOADS)]
    for key, data in puts:
        remote[key] = md5(data)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), puts))
    specs = write_specs(
        tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
        mappings=[
            {"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True},
            {"name": "pulled", "from": "disk:pulled", "to": "s3:models/", "authority": "s3"},
        ],
    )
    env = {**os.environ, **seaweed.env(), "NO_COLOR": "1"}
    return {"root": root, "client": client, "bucket": bucket, "specs": specs, "env": env,
            "local": local, "moved": moved, "remote": remote}


def listing(world: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    pages = world["client"].get_paginator("list_objects_v2").paginate(Bucket=world["bucket"])
    for page in pages:
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj["ETag"].strip('"')  # single-part ETag: the server's md5 of the stored bytes
    return out


def check_nothing_lost(world: dict[str, Any]) -> dict[str, int]:
    """Assert the invariants; return the remaining work as the plan should count it."""
    root: Path = world["root"]
    for rel, digest in world["local"].items():
        assert md5((root / rel).read_bytes()) == digest, f"local file {rel} changed"
    stored = listing(world)
    expected_new = {new: digest for digest, new in world["moved"].items()}
    work = {"upload": 0, "download": 0, "move": 0, "delete": 0}
    for key, etag in stored.items():
        if key == ".pixel/lock":
            continue
        if key.startswith("datasets/raw/up/"):
            assert etag == world["local"]["raw/up/" + key.rsplit("/", 1)[1]], f"partial or wrong object at {key}"
        elif key.startswith("datasets/raw/new/"):
            assert etag == world["local"]["raw/new/" + key.rsplit("/", 1)[1]], f"partial or wrong object at {key}"
        else:
            assert world["remote"].get(key) == etag, f"unexpected or damaged object {key}"
    for digest, new in world["moved"].items():
        old = new.replace("/new/", "/old/")
        assert new in stored or old in stored, f"content {digest} (moving {old} -> {new}) was lost"
        if new not in stored:
            work["move"] += 1
        if old in stored:
            work["delete"] += 1
    assert set(expected_new) >= {k for k in stored if k.startswith("datasets/raw/new/")}
    work["upload"] = sum(1 for rel in world["local"] if rel.startswith("raw/up/") and f"datasets/{rel}" not in stored)
    work["delete"] += sum(1 for k in stored if k.startswith("datasets/raw/gone/"))
    for key, digest in world["remote"].items():
        if not key.startswith("models/"):
            continue
        path = root / "pulled" / key.removeprefix("models/")
        if path.exists():
            assert md5(path.read_bytes()) == digest, f"partial download at final path {path}"
        else:
            work["download"] += 1
    unexpected = [p for p in (root / "pulled").iterdir() if not is_temp_name(p.name)
                  and f"models/{p.name}" not in world["remote"]]
    assert not unexpected, unexpected
    return work


def summary(work: dict[str, int]) -> str:
    if not any(work.values()):
        return "No changes. Storage matches the specs."
    parts = [f"{work['upload']:,} to upload"]
    if work["download"]:
        parts.append(f"{work['download']:,} to download")
    parts.append("0 to update")
    if work["move"]:
        parts.append(f"{work['move']:,} to move")
    parts.append(f"{work['delete']:,} to delete")
    return "Plan: " + ", ".join(parts) + "."


def cli(world: dict[str, Any], *args: str) -> Run:
    return pixel_in_process([args[0], "--specs", str(world["specs"]), *args[1:]], world["env"])


def lock_id(world: dict[str, Any]) -> str | None:
    try:
        raw = world["client"].get_object(Bucket=world["bucket"], Key=".pixel/lock")["Body"].read()
    except world["client"].exceptions.NoSuchKey:
        return None
    return str(json.loads(raw)["id"])


class Events:
    """An apply's JSON log lines on its stderr, read as they come: whether it holds the lock, and how many of its
    actions are done. Counted from what the apply says it has done, so aiming a kill costs the server nothing."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[str] = []
        self.locked = False
        self.done = 0
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            try:
                event = json.loads(line).get("event")
            except ValueError:
                continue
            if event == "lock acquired":
                self.locked = True
            elif event == "action finished":
                self.done += 1
        stream.close()

    def reached(self, proc: subprocess.Popen[bytes], point: int) -> bool:
        """The apply has ended, or holds the lock and has done `point` actions."""
        return proc.poll() is not None or (self.locked and self.done >= point)

    def tail(self) -> str:
        self._reader.join(60)
        return "".join(self.lines)[-2000:]


def plan_while_the_bucket_stands_still(world: dict[str, Any]) -> tuple[Run, dict[str, int]]:
    """`pixel plan` and the work it must show, counted before and after it with nothing landing in between.

    SIGKILL stops the apply, not the requests it had sent: a CopyObject the server already holds lands after
    the kill, and once landed between the count and the plan's listing, the plan rightly shows one move fewer
    (a CI run failed so). A request that lands only lessens the work, so equal counts before and after the
    plan mean none landed meanwhile; otherwise count again (the apply had at most --parallelism in flight)."""
    for _ in range(10):
        before = check_nothing_lost(world)
        planned = cli(world, "plan", *GUARDS)
        if check_nothing_lost(world) == before:
            return planned, before
    raise AssertionError("the bucket kept changing long after the kill")


def test_kill_9_at_random_points_loses_nothing_and_converges(world: dict[str, Any]) -> None:
    seed = int(os.environ.get("PIXEL_CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    first = check_nothing_lost(world)
    assert first == {"upload": UPLOADS, "download": DOWNLOADS, "move": MOVES, "delete": MOVES + DELETES}
    kills = 0
    rounds = 0
    work = first
    while kills < KILLS:
        rounds += 1
        assert rounds <= 3 * KILLS, f"apply kept finishing before the kill (seed {seed})"
        # Spread the kills over the whole run, not just its start: each lands once the apply has carried out a
        # random share of the work left divided by the kills left. Counted in actions done, not seconds run, so
        # a loaded (or a fast) machine moves no kill past the end; a point of 0 kills it while it still plans.
        remaining = sum(work.values())
        point = int(rng.uniform(0.1, 0.8) * remaining / (KILLS - kills + 1))
        proc = subprocess.Popen(
            [PIXEL, "apply", "--auto-approve", "--parallelism", "8", "--specs", str(world["specs"]), *GUARDS],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**world["env"], "PIXEL_LOG_FORMAT": "json"},
        )
        assert proc.stderr is not None
        events = Events(proc.stderr)
        wait_for(functools.partial(events.reached, proc, point),
                 f"at action {point} of {remaining} or done (seed {seed})")
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        if proc.returncode != -signal.SIGKILL:
            assert proc.returncode == 0, f"seed {seed}: {events.tail()}"
            assert not any(check_nothing_lost(world).values()), f"a finished apply left work (seed {seed})"
            # It finished before the kill: new files to upload, so the kills still to come land mid-apply too.
            first_new = sum(1 for rel in world["local"] if rel.startswith("raw/up/"))
            for i in range(first_new, first_new + REFILL):
                data = blob(rng, i)
                (world["root"] / f"raw/up/u{i:04}.bin").write_bytes(data)
                world["local"][f"raw/up/u{i:04}.bin"] = md5(data)
            work = check_nothing_lost(world)
            continue
        work = check_nothing_lost(world)
        print(f"kill {kills} at action {point}: remaining {work}")  # shown with -s or on failure
        held = lock_id(world)
        if held is None:
            # The kill landed after the apply released its lock on the way out: only a finished apply does.
            assert not any(work.values()), f"a killed apply released its lock with work left (seed {seed})"
        else:
            assert cli(world, "force-unlock", held).code == 0
        planned, work = plan_while_the_bucket_stands_still(world)
        assert planned.code == 0, planned.err
        assert planned.out.rstrip().endswith(summary(work)), (seed, work, planned.out[-300:])
    assert kills >= KILLS, f"only {kills} kills landed (seed {seed})"

    final = cli(world, "apply", "--auto-approve", *GUARDS)
    assert final.code == 0, (seed, final.out[-2000:], final.err[-2000:])
    assert check_nothing_lost(world) == {"upload": 0, "download": 0, "move": 0, "delete": 0}
    again = cli(world, "plan", "--detailed-exitcode")
    assert again.code == 0 and again.out.strip() == "No changes. Storage matches the specs.", again.out[-500:]
    assert world["client"].list_multipart_uploads(Bucket=world["bucket"]).get("Uploads", []) == []
    assert lock_id(world) is None


def test_next_apply_aborts_only_the_multipart_uploads_pixel_recorded(
    tmp_path: Path, seaweed: Any, bucket: str
) -> None:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "big.bin").write_bytes(b"b" * 4096)
    specs = write_specs(
        tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True}],
    )
    client = seaweed.client()
    s3 = S3Store(S3StoreSpec("s3", bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path",
                             checksum="when_required"), client=client, apply_id="dead0000apply")
    # What a killed pixel apply leaves: an upload with parts, no object, and the record pixel wrote when it began.
    ours, record = s3._journal.start("upload", "datasets/raw/big.bin")
    client.upload_part(Bucket=bucket, Key="datasets/raw/big.bin", UploadId=ours, PartNumber=1, Body=b"x" * 1024)
    # Killed after CompleteMultipartUpload but before the record was removed: the object must survive.
    done, stale_record = s3._journal.start("upload", "elsewhere/done.bin")
    part = client.upload_part(Bucket=bucket, Key="elsewhere/done.bin", UploadId=done, PartNumber=1, Body=b"d")
    client.complete_multipart_upload(Bucket=bucket, Key="elsewhere/done.bin", UploadId=done,
                                     MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    # Other tools' uploads in flight, under the managed prefix and elsewhere: not pixel's, never touched.
    theirs = client.create_multipart_upload(Bucket=bucket, Key="datasets/raw/theirs.bin")["UploadId"]
    client.upload_part(Bucket=bucket, Key="datasets/raw/theirs.bin", UploadId=theirs, PartNumber=1, Body=b"t" * 10)
    foreign = client.create_multipart_upload(Bucket=bucket, Key="elsewhere/theirs.bin")["UploadId"]
    world = {"specs": specs, "env": seaweed.env()}

    planned = cli(world, "plan")
    assert ".pixel/uploads" not in planned.out  # the records are never data: nothing to upload, pull or prune
    applied = cli(world, "apply", "--auto-approve")
    assert applied.code == 0, applied.err[-2000:]
    aborted = [line for line in applied.err.splitlines() if "aborted an unfinished upload" in line]
    assert len(aborted) == 1, applied.err
    assert "left by an earlier apply" in aborted[0] and "s3:datasets/raw/big.bin" in aborted[0]
    assert "dead0000apply" in aborted[0]
    assert "theirs" not in applied.err
    assert "removed the record of an upload that had already finished" in applied.err
    left = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert sorted((u["Key"], u["UploadId"]) for u in left) == [
        ("datasets/raw/theirs.bin", theirs), ("elsewhere/theirs.bin", foreign)
    ]  # not ours: kept, parts and all
    assert len(client.list_parts(Bucket=bucket, Key="datasets/raw/theirs.bin", UploadId=theirs)["Parts"]) == 1
    records = client.list_objects_v2(Bucket=bucket, Prefix=".pixel/uploads/").get("Contents", [])
    assert records == [], f"{record} and {stale_record} should both be gone"
    assert client.get_object(Bucket=bucket, Key="datasets/raw/big.bin")["Body"].read() == b"b" * 4096
    assert client.get_object(Bucket=bucket, Key="elsewhere/done.bin")["Body"].read() == b"d"
    for upload_id, key in ((theirs, "datasets/raw/theirs.bin"), (foreign, "elsewhere/theirs.bin")):
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


@pytest.mark.slow
def test_kill_9_mid_multipart_upload_then_the_next_apply_aborts_it_and_nothing_else(
    tmp_path: Path, seaweed: Any, bucket: str
) -> None:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    big = root / "raw" / "big.bin"
    with open(big, "wb") as f:
        f.truncate(96 * 1024 * 1024)  # sparse, above the 64 MiB multipart threshold: 12 parts of 8 MiB
    specs = write_specs(
        tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True}],
    )
    client = seaweed.client()
    theirs = client.create_multipart_upload(Bucket=bucket, Key="datasets/raw/theirs.bin")["UploadId"]
    env = {**os.environ, **seaweed.env(), "NO_COLOR": "1", "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    world = {"specs": specs, "env": env, "client": client, "bucket": bucket}

    def records() -> list[str]:
        return [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=".pixel/uploads/").get("Contents", [])]

    proc = subprocess.Popen([PIXEL, "apply", "--auto-approve", "-q", "--specs", str(specs)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)

    def recorded_ids() -> list[str]:
        # The record exists from before CreateMultipartUpload; wait until it also names the upload id.
        ids = []
        for key in records():
            try:
                ids.append(json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read()).get("upload_id") or "")
            except client.exceptions.NoSuchKey:
                continue  # completed and forgotten since the listing
        return ids

    wait_for(lambda: proc.poll() is not None or any(recorded_ids()), "the upload id recorded")
    assert proc.poll() is None, f"apply finished before it was killed: {proc.communicate()[1].decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    (record,) = records()
    body = json.loads(client.get_object(Bucket=bucket, Key=record)["Body"].read())
    held = lock_id(world)
    assert held is not None and body["apply_id"] == held and body["key"] == "datasets/raw/big.bin"
    uploads = {u["UploadId"]: u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
    assert uploads == {body["upload_id"]: "datasets/raw/big.bin", theirs: "datasets/raw/theirs.bin"}
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="datasets/")  # nothing half-written

    assert cli(world, "force-unlock", held).code == 0
    again = cli(world, "apply", "--auto-approve")
    assert again.code == 0, again.err[-2000:]
    assert "aborted an unfinished upload left by an earlier apply" in again.err and held in again.err
    left = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in left] == [("datasets/raw/theirs.bin", theirs)]
    assert records() == []
    head = client.head_object(Bucket=bucket, Key="datasets/raw/big.bin")
    assert head["ContentLength"] == big.stat().st_size
    assert head["Metadata"]["md5"] == hashlib.md5(big.read_bytes()).hexdigest()
    client.abort_multipart_upload(Bucket=bucket, Key="datasets/raw/theirs.bin", UploadId=theirs)
