"""kill -9 during a final-dataset publish: the published dataset stays whole; the next apply finishes the job.

A first build is published; then, round after round, a source is edited (so every
shard changes) and `pixel apply` is killed with SIGKILL at a random moment after it
took the lock: while it compiles, uploads shards, writes the manifest or deletes
the previous build's shards. After every kill the manifest in S3 is a whole
manifest and every shard it names is in the bucket with exactly its md5. Then an
uninterrupted apply converges and the plan after it is empty.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from tests.integration.final_world import MANIFEST, FinalWorld, jsonl, records
from tests.integration.pixelenv import PIXEL
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = 10
GUARDS = ["--max-delete", "10000"]


def _cli(world: FinalWorld, env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(main, [args[0], "--specs", str(world.specs), *args[1:]], env=env)


def _etags(world: FinalWorld) -> dict[str, str]:
    pages = world.client.get_paginator("list_objects_v2").paginate(Bucket=world.bucket, Prefix="final_dataset/")
    return {o["Key"]: o["ETag"].strip('"') for page in pages for o in page.get("Contents", [])}


def _progress(world: FinalWorld, before: dict[str, str]) -> int:
    """How far a publish has got since `before`: objects under final_dataset/ written (new keys or new bytes)
    plus objects of `before` deleted."""
    now = _etags(world)
    return sum(1 for key, etag in now.items() if before.get(key) != etag) + sum(1 for key in before if key not in now)


def _reached(world: FinalWorld, proc: subprocess.Popen[bytes], before: dict[str, str], point: int) -> bool:
    """The apply has finished, or holds the lock and has got to `point` of the publish."""
    return proc.poll() is not None or (_lock_id(world) is not None and _progress(world, before) >= point)


def _published_is_whole(world: FinalWorld) -> dict[str, Any]:
    manifest = json.loads(world.get(MANIFEST))
    stored = _etags(world)
    for shard in manifest["shards"]:
        assert stored.get(shard["key"]) == shard["md5"], f"{shard['key']} missing or not the manifest's bytes"
    return dict(manifest)


def _lock_id(world: FinalWorld) -> str | None:
    try:
        raw = world.client.get_object(Bucket=world.bucket, Key=".pixel/lock")["Body"].read()
    except world.client.exceptions.NoSuchKey:
        return None
    return str(json.loads(raw)["id"])


def test_kill_9_during_publish_keeps_the_published_dataset_whole(
    tmp_path: Path, bucket: str, s3_client: Any, seaweed: Any
) -> None:
    seed = int(os.environ.get("PIXEL_CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    env = {**os.environ, **seaweed.env(), "NO_COLOR": "1"}
    world = FinalWorld(tmp_path / "disk", tmp_path / "specs", bucket, seaweed.endpoint, s3_client)
    world.root.mkdir()
    world.put_source("a", jsonl(records("a", 4000, text="round 0")))
    world.put_source("b", jsonl(records("b", 1000, start=10_000)))
    world.write_specs(["a", "b"], shard="{records: 60}")
    first = _cli(world, env, "apply", "--auto-approve", *GUARDS)
    assert first.exit_code == 0, first.output[-2000:]
    _published_is_whole(world)

    # One uninterrupted rebuild measures a whole publish: the kills below land anywhere in it, from just after the
    # lock is taken to the deletes of the previous build's shards.
    world.put_source("a", jsonl(records("a", 4000, text="round 0, rebuilt")))
    before = _etags(world)
    rebuild = _cli(world, env, "apply", "--auto-approve", *GUARDS)
    assert rebuild.exit_code == 0, rebuild.output[-2000:]
    whole = _progress(world, before)
    assert whole > 2 * KILLS, f"a rebuild wrote and deleted only {whole} objects"

    kills = rounds = edits = 0
    finished = True
    while kills < KILLS:
        rounds += 1
        # A kill point past what a resumed publish has left lets it finish: that round edits again (a whole
        # rebuild), so at most about every other round kills.
        assert rounds <= 4 * KILLS, f"apply kept finishing before the kill (seed {seed})"
        if finished:
            edits += 1  # new bytes in every shard: a full rebuild to interrupt
            world.put_source("a", jsonl(records("a", 4000, text=f"round {edits}")))
        before = _etags(world)
        # Killed once the publish has got this far: a point chosen by what the apply has done, not by how long it
        # has run (a fast machine finished before a timed kill).
        point = rng.randrange(whole)
        proc = subprocess.Popen(
            [PIXEL, "apply", "--auto-approve", "-q", "--specs", str(world.specs), *GUARDS],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )
        wait_for(functools.partial(_reached, world, proc, before, point), f"at point {point} or done (seed {seed})")
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        _, err = proc.communicate(timeout=60)
        if finished:
            assert proc.returncode == 0, f"seed {seed}: {err.decode()[-2000:]}"
        manifest = _published_is_whole(world)
        print(f"kill {kills} (round {rounds}): published build {manifest['build'][:8]}")
        held = _lock_id(world)
        if held is not None:
            assert _cli(world, env, "force-unlock", held).exit_code == 0
    assert kills >= KILLS

    last = _cli(world, env, "apply", "--auto-approve", *GUARDS)
    assert last.exit_code == 0, (seed, last.output[-2000:])
    manifest = _published_is_whole(world)
    assert set(_etags(world)) == {s["key"] for s in manifest["shards"]} | {MANIFEST, manifest["compiled"]["key"]}
    assert {s["name"]: s["md5"] for s in manifest["sources"]}["a"] == _etags_of(world, "datasets/processed/c/a.jsonl")
    again = _cli(world, env, "plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output[-2000:]
    assert list((world.root / "work" / "final").iterdir()) == []


def _etags_of(world: FinalWorld, key: str) -> str:
    return str(world.client.head_object(Bucket=world.bucket, Key=key)["ETag"].strip('"'))
