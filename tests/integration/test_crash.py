"""Crash safety on SeaweedFS: kill -9 apply at random points; nothing is lost, nothing is half-written.

One apply of 2,000 uploads, 500 server-side moves, 200 deletes and 300
downloads is killed with SIGKILL again and again (at least 10 kills, at
random moments after it took the lock). After every kill:

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

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.stores.local import is_temp_name
from tests.integration.pixelenv import PIXEL, Run, write_specs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UPLOADS, MOVES, DELETES, DOWNLOADS = 2000, 500, 200, 300
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
    parts = [f"{work['upload']} to upload"]
    if work["download"]:
        parts.append(f"{work['download']} to download")
    parts.append("0 to update")
    if work["move"]:
        parts.append(f"{work['move']} to move")
    parts.append(f"{work['delete']} to delete")
    return "Plan: " + ", ".join(parts) + "."


def cli(world: dict[str, Any], *args: str) -> Run:
    result = CliRunner().invoke(main, [args[0], "--specs", str(world["specs"]), *args[1:]], env=world["env"])
    return Run(result.exit_code, result.stdout, result.stderr)


def lock_id(world: dict[str, Any]) -> str | None:
    try:
        raw = world["client"].get_object(Bucket=world["bucket"], Key=".pixel/lock")["Body"].read()
    except world["client"].exceptions.NoSuchKey:
        return None
    return str(json.loads(raw)["id"])


def test_kill_9_at_random_points_loses_nothing_and_converges(world: dict[str, Any]) -> None:
    seed = int(os.environ.get("PIXEL_CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    first = check_nothing_lost(world)
    assert first == {"upload": UPLOADS, "download": DOWNLOADS, "move": MOVES, "delete": MOVES + DELETES}
    kills = 0
    rounds = 0
    # Spread the kills over the whole run, not just its first seconds: each kill lands after a random
    # share of the work that is left divided by the kills that are left, at a measured action rate.
    rate, overhead = 250.0, 0.5  # actions per second after the lock; seconds of observe + plan first
    work = first
    while kills < KILLS:
        rounds += 1
        assert rounds <= 3 * KILLS, f"apply kept finishing before the kill (seed {seed})"
        proc = subprocess.Popen(
            [PIXEL, "apply", "--auto-approve", "-q", "--parallelism", "8", "--specs", str(world["specs"]), *GUARDS],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=world["env"],
        )
        deadline = time.monotonic() + 30
        while lock_id(world) is None and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        locked_at = time.monotonic()
        remaining = sum(work.values())
        time.sleep(overhead + rng.uniform(0.2, 1.0) * remaining / (rate * (KILLS - kills + 1)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            ran = time.monotonic() - locked_at - overhead
            kills += 1
        _, err = proc.communicate(timeout=30)
        if proc.returncode != -signal.SIGKILL:
            assert proc.returncode == 0, f"seed {seed}: {err.decode()[-2000:]}"
            break  # it finished first: the plan must now be empty
        work = check_nothing_lost(world)
        done = remaining - sum(work.values())
        if ran > 0.2 and done > 0:
            rate = (rate + done / ran) / 2
        print(f"kill {kills}: remaining {work}, rate {rate:.0f}/s")  # shown with -s or on failure
        held = lock_id(world)
        assert held is not None, "a killed apply cannot have released its lock"
        assert cli(world, "force-unlock", held).code == 0
        planned = cli(world, "plan", *GUARDS)
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


def test_next_apply_aborts_multipart_uploads_a_killed_apply_left(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "big.bin").write_bytes(b"b" * 4096)
    specs = write_specs(
        tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True}],
    )
    client = seaweed.client()
    # What a killed multipart upload leaves: an upload id with parts, no object.
    managed = client.create_multipart_upload(Bucket=bucket, Key="datasets/raw/big.bin")["UploadId"]
    client.upload_part(Bucket=bucket, Key="datasets/raw/big.bin", UploadId=managed, PartNumber=1, Body=b"x" * 1024)
    foreign = client.create_multipart_upload(Bucket=bucket, Key="elsewhere/theirs.bin")["UploadId"]
    world = {"specs": specs, "env": seaweed.env()}

    applied = cli(world, "apply", "--auto-approve")
    assert applied.code == 0, applied.err[-2000:]
    assert "aborted an unfinished upload left by an earlier apply" in applied.err
    left = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in left] == [("elsewhere/theirs.bin", foreign)]  # not ours: kept
    client.abort_multipart_upload(Bucket=bucket, Key="elsewhere/theirs.bin", UploadId=foreign)
    assert client.get_object(Bucket=bucket, Key="datasets/raw/big.bin")["Body"].read() == b"b" * 4096
