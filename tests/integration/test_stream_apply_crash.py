"""kill -9 in the middle of a streamed apply: the lock stays held, nothing is half-written, and after
`pixel force-unlock` a new plan and apply converge."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pixelenv import pixel_in_process, write_specs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FILES = 40


def _remote(client: Any, bucket: str) -> dict[str, str]:
    """Key -> ETag (the md5 of a single-part object) of every object under the mapping's prefix."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="set/")
    return {o["Key"]: o["ETag"].strip('"') for page in pages for o in page.get("Contents", [])}


def _local(root: Path) -> dict[str, str]:
    return {f"set/{p.relative_to(root).as_posix()}": hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_kill_9_mid_streamed_apply_keeps_the_lock_and_the_next_apply_converges(
    tmp_path: Path, seaweed: Any, bucket: str
) -> None:
    root = tmp_path / "data"
    (root / "set").mkdir(parents=True)
    for i in range(FILES):
        (root / "set" / f"f{i:03d}.jsonl").write_bytes(f'{{"i": {i}}}\n'.encode() * (i + 1))
    specs = write_specs(tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
                        mappings=[{"name": "set", "from": "disk:set", "to": "s3:set/", "prune": True}])
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    plan_file = tmp_path / "plan.json"
    assert pixel_in_process(["plan", "--specs", str(specs), "-out", str(plan_file)], env).code == 0

    child_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "tests.integration.stream_apply_child", str(specs), str(plan_file), "7"]
    child = subprocess.Popen(argv, cwd=ROOT, env=child_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        # Blocks on the child's own progress, not on a clock.
        line = next((seen for seen in child.stdout if seen.startswith("ran ")), "")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert line.strip() == "ran 7", line
    assert child.returncode == -signal.SIGKILL

    client = seaweed.client()
    held = json.loads(client.get_object(Bucket=bucket, Key=".pixel/lock")["Body"].read())["id"]
    # Still held: another apply is refused until someone who knows the apply is dead says so.
    refused = pixel_in_process(["apply", "--scale", "stream", "--specs", str(specs), str(plan_file)], env)
    assert refused.code == 1 and "lock" in refused.err
    # Every object written is whole (its ETag is the local file's md5), and the work stopped part way.
    local, remote = _local(root / "set"), _remote(client, bucket)
    assert 7 <= len(remote) < FILES
    assert all(local[key] == etag for key, etag in remote.items())

    assert pixel_in_process(["force-unlock", "--specs", str(specs), held], env).code == 0
    again = tmp_path / "again.json"
    assert pixel_in_process(["plan", "--specs", str(specs), "-out", str(again)], env).code == 0
    applied = pixel_in_process(["apply", "--scale", "stream", "--specs", str(specs), str(again)], env)
    assert applied.code == 0, applied.err
    assert _remote(client, bucket) == local
    after = pixel_in_process(["plan", "--detailed-exitcode", "--specs", str(specs)], env)
    assert after.code == 0, after.out
