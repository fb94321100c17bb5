"""`pixel apply` sends small uploads through the executor's own lane (apply/bulk.py), against a real SeaweedFS.

The lane must store exactly what the worker threads store (ETag = md5, the md5 metadata), keep the plan's
preconditions (If-None-Match, the source still what the plan saw), and fail one action without the others.
A spy on `SmallUploads.start` proves which actions went through it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import bulk, session
from reconciler.apply.executor import LocalExecutor
from reconciler.commands import apply_saved
from reconciler.model import Action, S3StoreSpec
from reconciler.stores.base import StoreError
from reconciler.stores.local import LocalStore
from reconciler.stores.s3 import S3Store
from reconciler.stores.s3.direct.bulk import BulkSender
from reconciler.stores.s3.direct.http_pool import Response
from tests.integration.pixelenv import Run, pixel_in_process, write_specs

pytestmark = pytest.mark.integration
SMALL = 24
BIG = 2 * 1024 * 1024  # over the 1 MiB a small PUT reads whole: a worker's


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def lane_started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    started: list[str] = []
    real = bulk.SmallUploads.start

    def spy(self: bulk.SmallUploads, action: Action) -> None:
        started.append(action.target.key)
        real(self, action)

    monkeypatch.setattr(bulk.SmallUploads, "start", spy)
    return started


def no_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every action on a worker thread: `LocalExecutor(bulk=False)` where the commands make their executor."""

    def threaded(parallelism: int = 16) -> LocalExecutor:
        return LocalExecutor(parallelism, bulk=False)

    monkeypatch.setattr(session, "LocalExecutor", threaded)
    monkeypatch.setattr(apply_saved, "LocalExecutor", threaded)


def tree(root: Path) -> dict[str, bytes]:
    files = {f"s{i:02}.bin": os.urandom(i * 37 % 3000) for i in range(SMALL)}
    files["big.bin"] = os.urandom(BIG)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return files


def world(tmp_path: Path, seaweed: Any, bucket: str, prefix: str) -> tuple[Path, Callable[..., Run]]:
    root = tmp_path / prefix
    (root / "d").mkdir(parents=True)
    specs = write_specs(
        tmp_path / f"specs-{prefix}", endpoint=seaweed.endpoint, bucket=bucket, root=root,
        mappings=[{"name": "m", "from": "disk:d", "to": f"s3:{prefix}/", "prune": False}],
    )

    def cli(*args: str) -> Run:
        return pixel_in_process([args[0], "--specs", str(specs), *args[1:]], seaweed.env())

    return root / "d", cli


def stored(client: Any, bucket: str, prefix: str) -> dict[str, tuple[str, str, int]]:
    """Each object under `prefix`: its ETag, its md5 metadata, its size."""
    out: dict[str, tuple[str, str, int]] = {}
    for obj in client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", []):
        head = client.head_object(Bucket=bucket, Key=obj["Key"])
        out[obj["Key"][len(prefix) + 1 :]] = (head["ETag"].strip('"'), head["Metadata"].get("md5", ""), obj["Size"])
    return out


def test_small_files_go_through_the_lane_and_store_what_the_worker_threads_store(
    tmp_path: Path, seaweed: Any, bucket: str, s3_client: Any, lane_started: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, cli = world(tmp_path, seaweed, bucket, "lane")
    files = tree(root)
    applied = cli("apply", "--auto-approve", "--format", "json")
    assert applied.code == 0, applied.err
    assert json.loads(applied.out)["counts"]["done"] == len(files)
    assert sorted(lane_started) == sorted(f"lane/{name}" for name in files if name != "big.bin")
    objects = stored(s3_client, bucket, "lane")
    assert objects == {name: (md5(data), md5(data), len(data)) for name, data in files.items()}
    for name in ("s01.bin", "s23.bin"):
        assert s3_client.get_object(Bucket=bucket, Key=f"lane/{name}")["Body"].read() == files[name]
    assert "No changes." in cli("plan").out

    # The same tree by worker threads only: the same objects, byte for byte.
    lane_started.clear()
    no_lane(monkeypatch)
    threaded_root, threaded_cli = world(tmp_path, seaweed, bucket, "threads")
    for name, data in files.items():
        (threaded_root / name).write_bytes(data)
    assert threaded_cli("apply", "--auto-approve").code == 0
    assert lane_started == []
    assert stored(s3_client, bucket, "threads") == objects


def test_one_lane_action_fails_alone_on_a_precondition_a_changed_or_an_unreadable_source(
    tmp_path: Path, seaweed: Any, bucket: str, s3_client: Any, lane_started: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, cli = world(tmp_path, seaweed, bucket, "p")
    files = {name: os.urandom(500) for name in ("ok1", "ok2", "theirs", "same-size", "other-size", "unreadable")}
    for name, data in files.items():
        (root / name).write_bytes(data)
    plan = tmp_path / "plan.json"
    assert cli("plan", "-out", str(plan)).code == 0

    s3_client.put_object(Bucket=bucket, Key="p/theirs", Body=b"created by someone else after the plan")
    same = root / "same-size"
    st = same.stat()
    same.write_bytes(os.urandom(500))
    os.utime(same, ns=(st.st_atime_ns, st.st_mtime_ns))
    (root / "other-size").write_bytes(os.urandom(501))
    real_open = LocalStore.open

    def open_unless_unreadable(self: LocalStore, key: str, **kw: Any) -> Any:
        if key == "d/unreadable":
            raise PermissionError(13, "Permission denied", str(root / key))
        return real_open(self, key, **kw)

    monkeypatch.setattr(LocalStore, "open", open_unless_unreadable)

    applied = cli("apply", "--format", "json", str(plan))
    assert applied.code == 1, applied.err
    report = json.loads(applied.out)
    failed = {row["key"]: row for row in report["failed"]}
    assert set(failed) == {"p/theirs", "p/same-size", "p/other-size", "p/unreadable"}, report
    assert failed["p/theirs"]["code"] == "PreconditionFailed"
    for key in ("p/same-size", "p/other-size"):
        assert "changed since the plan" in failed[key]["error"], failed[key]
    assert "Permission denied" in failed["p/unreadable"]["error"]
    assert sorted(r["key"] for r in report["done"]) == ["p/ok1", "p/ok2"]
    assert sorted(lane_started) == sorted(f"p/{name}" for name in files)

    objects = stored(s3_client, bucket, "p")
    assert objects["ok1"] == (md5(files["ok1"]), md5(files["ok1"]), 500)
    assert objects["ok2"] == (md5(files["ok2"]), md5(files["ok2"]), 500)
    theirs = s3_client.get_object(Bucket=bucket, Key="p/theirs")["Body"].read()
    assert theirs == b"created by someone else after the plan"
    assert set(objects) == {"ok1", "ok2", "theirs"}


def test_bytes_that_are_not_the_planned_md5_are_refused_by_the_server_on_the_lane_s_wire(
    seaweed: Any, bucket: str, s3_client: Any, aws_env: dict[str, str]
) -> None:
    # apply re-hashes a same-size edit before sending (runner `_planned_bytes`); a change after that read
    # is the server's to refuse, by the Content-MD5 the lane's request carries as the threaded one does.
    spec = S3StoreSpec("s3", bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path",
                       checksum="when_required")
    store = S3Store(spec)
    sender: BulkSender[str] = BulkSender()
    planned = os.urandom(300)
    try:
        endpoint = store.bulk_endpoint(sender, 1)
        assert endpoint is not None

        def put(data: bytes) -> Response | Exception:
            endpoint.send("k", store.put_wire("k", lambda: io.BytesIO(data), size=300, md5=md5(planned),
                                              if_absent=True))
            for _ in range(1000):
                if got := sender.wait(timeout=30):
                    return got[0][1]
            raise AssertionError("no answer")

        with pytest.raises(StoreError) as refused:
            store.put_answered("k", put(os.urandom(300)), size=300, md5=md5(planned))
        assert refused.value.code in {"BadDigest", "InvalidDigest"}, refused.value
        assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)
        entry = store.put_answered("k", put(planned), size=300, md5=md5(planned))
        assert entry.etag == md5(planned)
        assert s3_client.get_object(Bucket=bucket, Key="k")["Body"].read() == planned
    finally:
        sender.close()
