"""The demo world (reconciler.dev.world_data) on the session's SeaweedFS, with the repository's specs."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.dev.world_data import seed_world
from tests.integration.pixelenv import Run, pixel, pixel_in_process

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Demo:
    root: Path
    specs: Path
    env: dict[str, str]
    client: Any
    data_bucket: str
    actor_bucket: str
    # `pixel` in a child process rather than in this one (pixelenv.pixel_in_process says when that matters).
    child: bool = False

    def pixel(self, *args: str) -> Run:
        run = pixel if self.child else pixel_in_process
        return run([*args[:1], "--specs", str(self.specs), *args[1:]], self.env)

    def manifest(self, actor_id: str) -> Path:
        return self.root / "data" / "actor_manifests" / f"{actor_id}_manifest.json"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


# One boto3 client per server (and its credentials) for every demo world on it: making one costs ~0.12 CPU-s (its
# service model), and no test changes the client it reaches its buckets with (no events, no stubs).
_CLIENTS: dict[tuple[str, str], Any] = {}


def _client(seaweed: Any) -> Any:
    key = (seaweed.endpoint, seaweed.access_key)
    if key not in _CLIENTS:
        _CLIENTS[key] = seaweed.client()
    return _CLIENTS[key]


def make_demo(tmp_path: Path, seaweed: Any, bucket: str) -> Demo:
    """The repository's specs with their two buckets renamed to `bucket` and a sibling, seeded with the demo world."""
    client = _client(seaweed)
    actor_bucket = f"{bucket}-actors"[:63].rstrip("-.")
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for name in (bucket, actor_bucket):
        if name not in existing:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
                client.create_bucket(Bucket=name)
    specs = tmp_path / "specs"
    shutil.copytree(REPO / "specs", specs)
    for file in specs.glob("*.yaml"):
        text = file.read_text()
        text = re.sub(r"bucket: pixel-data\b", f"bucket: {bucket}", text)
        text = re.sub(r"bucket: story-boards-assets\b", f"bucket: {actor_bucket}", text)
        file.write_text(text)
    root = tmp_path / "demo-data"
    seed_world(root, client, data_bucket=bucket, actor_bucket=actor_bucket)
    env = {**seaweed.env(), "PIXEL_S3_ENDPOINT": seaweed.endpoint, "PIXEL_DATA_ROOT": str(root)}
    return Demo(root, specs, env, client, bucket, actor_bucket)




def applied(demo: Demo, *args: str) -> Run:
    """`pixel apply --auto-approve -q`, asserted to succeed."""
    run = demo.pixel("apply", "--auto-approve", "-q", *args)
    assert run.code == 0, run.out + run.err
    return run


def plan_json(demo: Demo) -> dict[str, Any]:
    """The plan saved with `-out`, as JSON."""
    out = demo.root.parent / "plan.json"
    run = demo.pixel("plan", "-out", str(out), "-q")
    assert run.code == 0, run.out + run.err
    data: dict[str, Any] = json.loads(out.read_text())
    return data


_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def steady(value: Any, names: dict[str, str]) -> Any:
    """A generated JSON document without its timestamps and with the world's own names replaced: two worlds
    applied the same way (in memory and streamed, locally and on Dask) compare equal through it."""
    if isinstance(value, dict):
        if str(value.get("key", "")).endswith("manifest.json") and "md5" in value:
            # The complete inventory lists the published final manifest too, whose bytes carry its build time.
            value = {**value, "md5": "<time>"}
        return {k: "<time>" if "timestamp" in k else steady(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [steady(v, names) for v in value]
    if isinstance(value, str):
        if _STAMP.match(value):
            return "<time>"
        for name, alias in names.items():
            value = value.replace(name, alias)
    return value
