"""Issue 23.8: a published shard whose bytes were replaced heals on the next apply, and only those bytes are replaced.

The rebuild yields the same key (its name carries the md5 of what it should hold); the compile never
overwrites blind, so the plan deletes the foreign bytes first, If-Match the ETag it saw, and the
rebuild writes the key again. A change made between the plan and its apply is refused by S3.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import execute
from reconciler.apply.runner import build_runner
from reconciler.commands.apply import apply
from reconciler.model import ActionKind
from reconciler.plan.graph import build_graph
from tests.integration.final_world import MANIFEST, FinalWorld, jsonl, records

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path, bucket: str, s3_client: Any, seaweed: Any, aws_env: dict[str, str]) -> Iterator[FinalWorld]:
    w = FinalWorld(tmp_path / "disk", tmp_path / "specs", bucket, seaweed.endpoint, s3_client)
    w.root.mkdir()
    w.put_source("a", jsonl(records("a", 150)))
    w.put_source("b", jsonl(records("b", 60, start=1000)))
    w.write_specs(["a", "b"])
    assert apply(w.specs, auto_approve=True, parallelism=4) == 0
    yield w


def _multipart_put(world: FinalWorld, key: str, body: bytes) -> None:
    """One-part multipart upload: its ETag is not an md5 and it records none, as a foreign tool's would be."""
    client = world.client
    upload = client.create_multipart_upload(Bucket=world.bucket, Key=key)["UploadId"]
    part = client.upload_part(Bucket=world.bucket, Key=key, UploadId=upload, PartNumber=1, Body=body)
    client.complete_multipart_upload(
        Bucket=world.bucket, Key=key, UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )


@pytest.mark.parametrize("how", ["put", "multipart-same-size"])
def test_a_corrupted_published_shard_heals_and_the_next_plan_is_empty(world: FinalWorld, how: str) -> None:
    manifest = world.manifest()
    shard = manifest["shards"][0]
    good = world.get(shard["key"])
    foreign = bytes(reversed(good))  # same size, other bytes
    if how == "put":
        world.client.put_object(Bucket=world.bucket, Key=shard["key"], Body=foreign)
    else:
        _multipart_put(world, shard["key"], foreign)
    assert world.get(shard["key"]) == foreign

    _, _, plan = world.plan()
    [repair] = [a for a in plan.actions if a.kind is ActionKind.DELETE and a.target.key == shard["key"]]
    assert repair.source is None and repair.precondition.target_etag
    assert "holds other bytes than this dataset wrote" in repair.reason
    [compile_action] = [a for a in plan.actions if a.kind is ActionKind.COMPILE]
    assert (repair.id, compile_action.id) in plan.edges  # deleted first: the rebuild writes the key again

    assert apply(world.specs, auto_approve=True, parallelism=4) == 0
    healed = world.get(shard["key"])
    assert healed == good and hashlib.md5(healed).hexdigest() == shard["md5"]
    assert world.manifest()["shards"] == manifest["shards"]
    _, _, after = world.plan()
    assert after.actions == ()


def test_a_change_after_the_plan_is_refused_and_the_next_apply_heals(world: FinalWorld) -> None:
    shard = world.manifest()["shards"][0]
    good = world.get(shard["key"])
    world.client.put_object(Bucket=world.bucket, Key=shard["key"], Body=b"first foreign bytes\n")
    ws, _, plan = world.plan()
    manifest_before = world.get(MANIFEST)
    # Someone writes the key again between the plan and its apply: the repair's If-Match must refuse.
    world.client.put_object(Bucket=world.bucket, Key=shard["key"], Body=b"second foreign bytes\n")

    result = execute(build_graph(plan), build_runner(ws.desired, ws.stores), parallelism=4)
    failed = {o.action.target.key for o in result.failed}
    assert shard["key"] in failed
    assert world.get(shard["key"]) == b"second foreign bytes\n"
    assert world.get(MANIFEST) == manifest_before  # the compile waited for the repair, so nothing was published

    assert apply(world.specs, auto_approve=True, parallelism=4) == 0
    assert world.get(shard["key"]) == good
    _, _, after = world.plan()
    assert after.actions == ()
