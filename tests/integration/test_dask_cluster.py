"""`pixel apply --executor dask` on a real distributed.LocalCluster (worker processes on loopback) and SeaweedFS.

One cluster serves the module: starting worker processes costs seconds, the tests milliseconds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.dev.seaweed import SeaweedServer
from tests.integration import daskhelp
from tests.integration.demo_world import Demo, make_demo, steady
from tests.integration.pixelenv import PIXEL, pixel, pixel_in_process, write_specs
from tests.waiting import wait_for

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# No dashboard; the scheduler still serves its HTTP routes, at 8787 unless told a port: two clusters of this
# module alive at once (the module's and a bare one) then warn that 8787 is taken. ":0" is any free port.
NO_DASHBOARD: dict[str, Any] = {"dashboard_address": None, "scheduler_kwargs": {"dashboard_address": ":0"}}


@pytest.fixture(scope="module")
def cluster(seaweed: SeaweedServer) -> Iterator[Any]:
    """Two worker processes; they find the S3 credentials in their own environment, inherited from here."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in seaweed.env().items():
            patch.setenv(name, value)
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", **NO_DASHBOARD
        ) as local:
            yield local


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster) as c:
        yield c


def _s3_state(client: Any, bucket: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if not obj["Key"].startswith(".pixel/"):
                body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                # The final dataset's manifest records when it was made and in which bucket; the rest is bytes.
                published = obj["Key"] == "final_dataset/manifest.json"
                out[obj["Key"]] = steady(json.loads(body), {bucket: "<bucket>"}) if published else (
                    hashlib.md5(body).hexdigest()
                )
    return out


def _local_state(demo: Demo) -> dict[str, Any]:
    names = {str(demo.root): "<root>", demo.data_bucket: "<bucket>"}
    out: dict[str, Any] = {}
    for path in sorted(demo.root.rglob("*")):
        if path.is_file() and ".pixel" not in path.parts:
            rel = str(path.relative_to(demo.root))
            generated = rel.endswith(("_manifest.json", "dataset_registry.json", "final_dataset/manifest.json"))
            body = path.read_bytes()
            out[rel] = steady(json.loads(body), names) if generated else hashlib.md5(body).hexdigest()
    return out


def _report_rows(report: dict[str, Any]) -> dict[str, Any]:
    def rows(which: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in report[which]]

    return {"status": report["status"], "counts": report["counts"], "bytes": report["bytes"],
            "done": rows("done"), "failed": rows("failed"), "skipped": rows("skipped")}


def _mixed_world(tmp: Path, seaweed: SeaweedServer, bucket: str) -> Demo:
    """The demo world (uploads, copies, moves and their deletes, verifies, manifests) plus a prune and a rehash."""
    demo = make_demo(tmp, seaweed, bucket)
    raw = "datasets/gdrive/raw/organise/"
    demo.client.put_object(Bucket=bucket, Key=raw + "stale.jsonl", Body=b'{"old": 1}\n')  # pruned: a delete
    # Uploaded by another tool as one multipart part: the ETag is not an md5, so pixel rehashes it.
    # Not a dataset source: a source of unknown md5 would hold the final dataset's compile back to the next plan.
    local = demo.root / "gdrive" / "raw" / "extra" / "multipart.jsonl"
    local.parent.mkdir(parents=True)
    local.write_bytes(b'{"id": "multipart"}\n' * 50)
    key = "datasets/gdrive/raw/extra/" + local.name
    upload = demo.client.create_multipart_upload(Bucket=bucket, Key=key)
    part = demo.client.upload_part(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=local.read_bytes()
    )
    demo.client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    return demo


def test_a_mixed_plan_on_the_cluster_ends_like_the_local_executor(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, cluster: Any, request: pytest.FixtureRequest
) -> None:
    # Equal-length roots and bucket names: the generated manifests name them, and the report has their sizes.
    names = [f"{bucket[:40]}-{side}" for side in "ld"]
    for name in names:
        for created in (name, f"{name}-actors"):
            request.addfinalizer(functools.partial(seaweed.delete_bucket, created))
    local = _mixed_world(tmp_path / "one", seaweed, names[0])
    dask = _mixed_world(tmp_path / "two", seaweed, names[1])
    dask.child = True  # the Dask client that apply opens lives and closes in its own process, beside the module's
    bucket, other = names
    planned = json.loads(dask.pixel("plan", "--format", "json").out)
    assert {a["kind"] for a in planned["actions"]} >= {
        "upload", "copy", "move", "delete", "rehash", "verify", "write-manifest"
    }

    by_local = local.pixel("apply", "--auto-approve", "--format", "json")
    by_dask = dask.pixel(
        "apply", "--auto-approve", "--format", "json", "--log-format", "json",
        "--executor", "dask", "--scheduler", cluster.scheduler_address, "--batch-actions", "3",
    )
    assert by_local.code == 0, by_local.err
    assert by_dask.code == 0, by_dask.err
    events = [json.loads(line) for line in by_dask.err.splitlines() if line.startswith("{")]
    assert any(e["event"] == "applying on a Dask cluster" and e["workers"] == 2 for e in events)
    # CI's view of the progress: every action's start (forwarded by the workers) and end, once each.
    started = sorted(e["key"] for e in events if e["event"] == "action started")
    finished = sorted(e["key"] for e in events if e["event"] == "action finished")
    assert started == finished
    assert len(started) == len(planned["actions"])
    on_cluster, here = _report_rows(json.loads(by_dask.out)), _report_rows(json.loads(by_local.out))
    assert on_cluster == here
    assert json.loads(by_dask.out)["counts"]["done"] == len(planned["actions"])

    assert _s3_state(dask.client, other) == _s3_state(local.client, bucket)
    assert _s3_state(dask.client, f"{other}-actors") == _s3_state(local.client, f"{bucket}-actors")
    assert _local_state(dask) == _local_state(local)
    again = dask.pixel("plan", "--detailed-exitcode")
    assert again.code == 0, again.out


def test_a_worker_without_the_local_root_is_refused_before_anything_runs(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, cluster: Any, client: Any
) -> None:
    root = tmp_path / "data"
    (root / "set").mkdir(parents=True)
    (root / "set" / "a.jsonl").write_bytes(b"{}\n")
    specs = write_specs(tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
                        mappings=[{"name": "set", "from": "disk:set", "to": "s3:set/"}])
    one = sorted(client.scheduler_info(n_workers=-1)["workers"])[0]
    client.run(daskhelp.hide_root, str(root), workers=[one])
    try:
        run = pixel(["apply", "--specs", str(specs), "--auto-approve", "--executor", "dask"],
                    {**seaweed.env(), "PIXEL_DASK_SCHEDULER": cluster.scheduler_address})
    finally:
        client.run(daskhelp.show_roots)
    assert run.code == 1
    assert f"worker {one} does not see {root} (local store 'disk')" in run.err
    assert "nothing was touched" in run.err
    listed = seaweed.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == [], "no upload, and the lock was released"


def test_workers_without_credentials_are_refused_once_before_anything_runs(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    (root / "set").mkdir(parents=True)
    for i in range(30):
        (root / "set" / f"f{i:02d}.jsonl").write_bytes(f'{{"i": {i}}}\n'.encode())
    specs = write_specs(tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
                        mappings=[{"name": "set", "from": "disk:set", "to": "s3:set/"}])
    # Workers started where no credential is to be found: no AWS_* keys, no shared files, no instance metadata.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", **NO_DASHBOARD
    ) as bare, distributed.Client(bare) as c:
        (worker,) = c.scheduler_info(n_workers=-1)["workers"]
        # The driver has credentials (the lock, the plan); the worker that would run the actions has none.
        run = pixel(["apply", "--specs", str(specs), "--auto-approve", "--format", "json",
                     "--executor", "dask", "--scheduler", bare.scheduler_address], seaweed.env())
    assert run.code == 1, run.err
    assert f"worker {worker} cannot use store 's3' (bucket {bucket}):" in run.err
    assert "no AWS credentials" in run.err
    assert "nothing was touched" in run.err
    # One refusal, not one failure per action.
    assert run.err.count("no AWS credentials") == 1, run.err
    report = json.loads(run.out)
    assert report["counts"] == {"done": 0, "failed": 0, "skipped": 0}
    (error,) = report["errors"]
    assert f"worker {worker} cannot use store 's3'" in error
    listed = seaweed.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == [], "no upload, and the lock was released"


def test_a_worker_killed_mid_apply_changes_nothing_in_the_end(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, cluster: Any, client: Any
) -> None:
    root = tmp_path / "data"
    files = {}
    for i in range(600):
        body = f"object {i}\n".encode() * 20
        path = root / "set" / f"d{i % 10}" / f"f{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        files[f"set/d{i % 10}/f{i:04d}.txt"] = hashlib.md5(body).hexdigest()
    specs = write_specs(tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
                        mappings=[{"name": "set", "from": "disk:set", "to": "s3:set/"}])
    env = {**os.environ, **seaweed.env(), "NO_COLOR": "1"}
    s3 = seaweed.client()
    pids = client.run(daskhelp.pid)
    proc = subprocess.Popen(
        [PIXEL, "apply", "--specs", str(specs), "--auto-approve", "--format", "json", "--parallelism", "2",
         "--executor", "dask", "--scheduler", cluster.scheduler_address, "--batch-actions", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    try:
        counted = [0]

        def mid_apply() -> bool:
            counted[0] = s3.list_objects_v2(Bucket=bucket, Prefix="set/").get("KeyCount", 0)
            return counted[0] >= 60 or proc.poll() is not None

        wait_for(mid_apply, "60 objects landed or the apply ended", timeout=120)
        landed = counted[0]
        if proc.poll() is not None:
            pytest.fail(f"the apply ended before the kill (exit {proc.returncode}): {proc.communicate()[1][-3000:]}")
        assert landed < len(files), f"the kill must land mid-apply ({landed} of {len(files)} had landed)"
        victim = sorted(pids.items())[0][1]
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out)
    assert report["counts"] == {"done": len(files), "failed": 0, "skipped": 0}, (report["counts"], err[-3000:])
    assert _s3_state(s3, bucket) == files
    again = pixel_in_process(["plan", "--specs", str(specs), "--detailed-exitcode"], seaweed.env())
    assert again.code == 0, again.out + again.err
    # The nanny restarts the killed worker; on a loaded 2-core runner that can take a while.
    client.wait_for_workers(2, timeout=180)
