"""The training-data part of `make demo`: status, apply, manifests, and a damaged manifest restored.

Called by the demo with a running S3 endpoint; it creates the actor bucket,
seeds the demo world (reconciler.dev.world_data) and narrates each step by
running the real `pixel` console script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reconciler.dev.world_data import ACTOR_BUCKET, DATA_BUCKET, seed_world

PIXEL = str(Path(sys.executable).with_name("pixel"))

Say = Callable[[str], None]


def _pixel(
    args: list[str], specs: Path, env: Mapping[str, str], say: Say, expect: tuple[int, ...] = (0, 2)
) -> subprocess.CompletedProcess[str]:
    command = [args[0], "--specs", str(specs), "-q", *args[1:]]
    say(f"\n$ pixel {' '.join(args)}")
    done = subprocess.run(
        [PIXEL, *command], env={**os.environ, **env}, capture_output=True, text=True, check=False, timeout=300
    )
    say(done.stdout.rstrip("\n"))
    if done.returncode not in expect:
        say(done.stderr.rstrip("\n"))
        raise RuntimeError(f"pixel {args[0]} exited {done.returncode}")
    if done.returncode == 1:
        say(done.stderr.rstrip("\n"))
    return done


def ensure_buckets(client: Any, names: tuple[str, ...] = (DATA_BUCKET, ACTOR_BUCKET)) -> None:
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for name in names:
        if name not in existing:
            try:
                client.create_bucket(Bucket=name)
            except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
                continue  # listed by another owner, or created meanwhile: either way it is there


def run_world_demo(specs: Path, root: Path, env: Mapping[str, str], client: Any, say: Say = print) -> None:
    """`env` must point PIXEL_S3_ENDPOINT at the server and PIXEL_DATA_ROOT at `root` (the workspace)."""
    ensure_buckets(client)
    seed = seed_world(root, client)
    say(f"\n== Training-data world: {len(seed.files)} local files and {len(seed.objects)} S3 objects seeded ==")
    say("Actors with images in every sync state, raw and acquired datasets to organise into processed.")
    _pixel(["status"], specs, env, say)
    _pixel(["plan"], specs, env, say)
    _pixel(["apply", "--auto-approve"], specs, env, say)

    manifest = root / "data" / "actor_manifests" / "0042_manifest.json"
    document = json.loads(manifest.read_text())
    say(f"\n{manifest.relative_to(root)}: statistics {json.dumps(document['statistics'], sort_keys=True)}")
    say(f"accountability {json.dumps(document.get('accountability', {}), sort_keys=True)}")
    _pixel(["status"], specs, env, say)

    before = manifest.stat().st_mtime_ns
    _pixel(["apply", "--auto-approve"], specs, env, say)
    same = manifest.stat().st_mtime_ns == before
    say(f"A second apply rewrote nothing: {manifest.name} mtime {'unchanged' if same else 'CHANGED'}.")

    say("\nEditing 0013's manifest by hand and deleting 0007's:")
    edited = root / "data" / "actor_manifests" / "0013_manifest.json"
    edited.write_text(edited.read_text().replace('"training_synced_count": 12', '"training_synced_count": 99'))
    (root / "data" / "actor_manifests" / "0007_manifest.json").unlink()
    _pixel(["plan"], specs, env, say)
    _pixel(["apply", "--auto-approve"], specs, env, say)
    say("\nWith --strict every finding (orphan, missing image, conflict) is an error, for CI:")
    _pixel(["plan", "--strict"], specs, env, say, expect=(1,))
