"""Fault injection between pixel and SeaweedFS: throttling, resets and stalls are retried; 403 fails cleanly."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.proxy import Fault, FaultProxy
from tests.integration.pixelenv import Run, pixel_in_process, write_specs

pytestmark = pytest.mark.integration
FILES = 30


@pytest.fixture
def proxy(seaweed: Any) -> Iterator[FaultProxy]:
    with FaultProxy(seaweed.endpoint, [], deadline=60) as p:
        yield p


@pytest.fixture
def world(tmp_path: Path, seaweed: Any, bucket: str, proxy: FaultProxy) -> dict[str, Any]:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    for i in range(FILES):
        (root / "raw" / f"f{i:02}.jsonl").write_bytes(os.urandom(100 + i))
    specs = write_specs(
        tmp_path / "specs", endpoint=proxy.endpoint, bucket=bucket, root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True}],
    )
    return {"root": root, "specs": specs, "env": seaweed.env(), "client": seaweed.client(), "bucket": bucket}


def cli(world: dict[str, Any], *args: str) -> Run:
    return pixel_in_process([args[0], "--specs", str(world["specs"]), *args[1:]], world["env"])


def stored(world: dict[str, Any]) -> dict[str, str]:
    listing = world["client"].list_objects_v2(Bucket=world["bucket"]).get("Contents", [])
    return {o["Key"]: o["ETag"].strip('"') for o in listing}


def test_apply_converges_through_slowdowns_resets_and_stalls(world: dict[str, Any], proxy: FaultProxy) -> None:
    proxy.faults.extend(
        [
            Fault("error", method="GET", path="list-type=2", times=2),  # listing throttled
            Fault("error", method="HEAD", times=2, status=500, code="InternalError"),
            Fault("error", method="PUT", path="/datasets/", times=8),  # 503 SlowDown
            Fault("reset", method="PUT", path="/datasets/", times=4),
            Fault("stall", method="PUT", path="/datasets/", times=2, stall_seconds=1.0),
        ]
    )
    applied = cli(world, "apply", "--auto-approve", "--format", "json")
    assert applied.code == 0, applied.err
    report = json.loads(applied.out)
    assert report["status"] == "ok" and report["counts"]["done"] == FILES
    for kind in ("error", "reset", "stall"):
        assert proxy.injected(kind) > 0, (kind, proxy.log.lines)
    assert proxy.injected("error") >= 10 and proxy.injected("reset") == 4

    objects = stored(world)
    for path in (world["root"] / "raw").iterdir():
        assert objects[f"datasets/raw/{path.name}"] == hashlib.md5(path.read_bytes()).hexdigest()
    assert ".pixel/lock" not in objects
    assert "No changes." in cli(world, "plan").out


def test_a_permanent_403_fails_cleanly_with_the_key_named(world: dict[str, Any], proxy: FaultProxy) -> None:
    proxy.faults.append(
        Fault("error", method="PUT", path="/datasets/raw/f07.jsonl", times=-1, status=403, code="AccessDenied")
    )
    applied = cli(world, "apply", "--auto-approve")
    assert applied.code == 1
    assert "✗ upload s3:datasets/raw/f07.jsonl [AccessDenied]" in applied.out
    assert f"{FILES - 1} done, 1 failed, 0 actions not started" in applied.out
    assert "Traceback" not in applied.out + applied.err
    assert proxy.injected() == 1, "a 403 is not worth retrying"
    objects = stored(world)
    assert "datasets/raw/f07.jsonl" not in objects and len(objects) == FILES - 1
    assert ".pixel/lock" not in objects

    as_json = json.loads(cli(world, "apply", "--auto-approve", "--format", "json").out)
    assert as_json["status"] == "failed"
    assert [(f["key"], f["code"]) for f in as_json["failed"]] == [("datasets/raw/f07.jsonl", "AccessDenied")]


def sends(proxy: FaultProxy, method: str, key: str) -> int:
    return sum(1 for line in proxy.log.lines if line.startswith(f"{method} ") and key in line.split(" ")[1])


def test_one_retry_layer_a_persistent_503_is_sent_executor_attempts_times_and_a_drop_once_more(
    world: dict[str, Any], proxy: FaultProxy
) -> None:
    from reconciler.stores.retry import DEFAULT_POLICY

    proxy.faults.extend(
        [
            Fault("error", method="PUT", path="/datasets/raw/f07.jsonl", times=-1),  # 503 SlowDown, for good
            Fault("reset", method="PUT", path="/datasets/raw/f03.jsonl", times=1),  # one dropped connection
        ]
    )
    applied = cli(world, "apply", "--auto-approve", "--format", "json")
    assert applied.code == 1
    report = json.loads(applied.out)
    assert [(f["key"], f["code"]) for f in report["failed"]] == [("datasets/raw/f07.jsonl", "SlowDown")]
    # The executor's attempts, each one send: not attempts x the raw path's x botocore's.
    assert sends(proxy, "PUT", "/datasets/raw/f07.jsonl") == DEFAULT_POLICY.attempts
    # The drop is resent inside the store, at once: the executor never saw it.
    assert sends(proxy, "PUT", "/datasets/raw/f03.jsonl") == 2
    assert "datasets/raw/f03.jsonl" in stored(world)


def test_botocore_resends_only_a_dropped_connection_and_only_once(
    seaweed: Any, bucket: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError, ConnectionClosedError

    from reconciler.model import S3StoreSpec
    from reconciler.stores.s3 import make_client

    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    seaweed.client().put_object(Bucket=bucket, Key="k", Body=b"x")
    client = make_client(S3StoreSpec("s3", bucket, endpoint=proxy.endpoint, region="us-east-1",
                                     addressing_style="path", checksum="when_required"))
    proxy.faults[:] = [Fault("error", method="HEAD", path="/k", times=-1)]
    with pytest.raises(ClientError):
        client.head_object(Bucket=bucket, Key="k")
    assert sends(proxy, "HEAD", f"/{bucket}/k") == 1  # a 503 goes up to the retry layer at once

    proxy.faults[:] = [Fault("reset", method="HEAD", path="/k", times=1)]
    client.head_object(Bucket=bucket, Key="k")
    assert sends(proxy, "HEAD", f"/{bucket}/k") == 1 + 2  # dropped, then resent

    proxy.faults[:] = [Fault("reset", method="HEAD", path="/k", times=-1)]
    with pytest.raises(ConnectionClosedError):
        client.head_object(Bucket=bucket, Key="k")
    assert sends(proxy, "HEAD", f"/{bucket}/k") == 3 + 2  # resent once, never more
