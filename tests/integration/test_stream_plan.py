"""`pixel plan --scale stream` on SeaweedFS: the same plan file as `pixel plan`, byte for byte, and it applies."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.dev.inventory_report import Row, render_report
from tests.integration.pixelenv import pixel_in_process, write_specs

pytestmark = pytest.mark.integration


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_streamed_plan_file_is_the_in_memory_one_and_applies(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    root = tmp_path / "data"
    _tree(
        root / "raw",
        {
            "a.jsonl": b"alpha\n",
            "b.jsonl": b"beta\n",
            "c/d.jsonl": b"delta\n",
            "c/e.jsonl": b"epsilon\n",
            "swap1.jsonl": b"one\n",
            "swap2.jsonl": b"two\n",
            "gone.jsonl": b"bye\n",
        },
    )
    specs = write_specs(
        tmp_path / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True}],
    )
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    assert pixel_in_process(["apply", "--auto-approve", "--specs", str(specs)], env).code == 0
    # A rename (a move), an edit, a delete, a new file and a swap (a parked copy).
    (root / "raw" / "a.jsonl").rename(root / "raw" / "renamed.jsonl")
    (root / "raw" / "b.jsonl").write_bytes(b"beta, edited\n")
    (root / "raw" / "gone.jsonl").unlink()
    _tree(root / "raw", {"c/new.jsonl": b"new\n", "swap1.jsonl": b"two\n", "swap2.jsonl": b"one\n"})

    streamed, in_memory = tmp_path / "streamed.json", tmp_path / "memory.json"
    run = pixel_in_process(["plan", "--scale", "stream", "-out", str(streamed), "--specs", str(specs)], env)
    assert run.code == 0, run.err
    assert "Plan: 1 to upload, 1 to update, 1 to copy, 3 to move, 2 to delete." in run.out
    assert "delete s3:datasets/raw/a.jsonl: moved to datasets/raw/renamed.jsonl" in run.out
    assert pixel_in_process(["plan", "-out", str(in_memory), "--specs", str(specs)], env).code == 0
    assert hashlib.sha256(streamed.read_bytes()).hexdigest() == hashlib.sha256(in_memory.read_bytes()).hexdigest()
    assert list((tmp_path / "cache" / "spill").iterdir()) == []  # the spill is gone with the command

    # Reviewed from the file, read an element at a time: the same summary, and as a PR comment.
    shown = pixel_in_process(["show", "--scale", "stream", str(streamed)], env)
    assert shown.code == 0, shown.err
    assert run.out.split("Saved the plan")[0].rstrip("\n") in shown.out
    markdown = pixel_in_process(["show", "--scale", "stream", "--format", "markdown", str(streamed)], env)
    assert "| move | 3 | 14 B |" in markdown.out
    assert "<details><summary>delete: the first 2</summary>" in markdown.out
    assert list((tmp_path / "cache" / "spill").iterdir()) == []

    assert pixel_in_process(["apply", "--auto-approve", str(streamed), "--specs", str(specs)], env).code == 0
    again = pixel_in_process(["plan", "--scale", "stream", "--detailed-exitcode", "--specs", str(specs)], env)
    assert again.code == 0, again.out
    assert "No changes. Storage matches the specs." in again.out


def test_stream_scale_refuses_formats_it_cannot_stream(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    root = tmp_path / "data"
    _tree(root / "raw", {"a.jsonl": b"a\n"})
    specs = write_specs(
        tmp_path / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/"}],
    )
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    run = pixel_in_process(["plan", "--scale", "stream", "--format", "json", "--specs", str(specs)], env)
    assert run.code == 1
    assert "--scale stream prints a summary (text or markdown)" in run.err


def test_from_an_inventory_a_pull_deletes_only_what_the_bucket_lacks_now(
    tmp_path: Path, seaweed: Any, bucket: str, request: pytest.FixtureRequest
) -> None:
    reports = seaweed.create_bucket(f"{bucket[:50]}-inv")
    request.addfinalizer(lambda: seaweed.delete_bucket(reports))
    client = seaweed.client()
    root = tmp_path / "data"
    specs = write_specs(
        tmp_path / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[{"name": "set", "from": "disk:set", "to": "s3:set/", "authority": "s3", "prune_local": True}],
        s3_extra=("inventory:", f"  bucket: {reports}", "  prefix: inv/daily"),
    )
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    for rel in ("a.jsonl", "b.jsonl"):
        client.put_object(Bucket=bucket, Key=f"set/{rel}", Body=rel.encode())
    rows = [
        Row(o["Key"], o["Size"], o["ETag"].strip('"'), o["LastModified"])
        for o in client.list_objects_v2(Bucket=bucket)["Contents"]
    ]
    for key, body in render_report(bucket, reports, rows, created=datetime.now(UTC), prefix="inv/daily").items():
        client.put_object(Bucket=reports, Key=key, Body=body)
    # After the report: an object written (and pulled since), and a local file the bucket never had.
    client.put_object(Bucket=bucket, Key="set/later.jsonl", Body=b"later")
    _tree(root / "set", {"a.jsonl": b"a.jsonl", "later.jsonl": b"later", "stale.jsonl": b"stale"})

    streamed, in_memory = tmp_path / "streamed.json", tmp_path / "memory.json"
    args = ["plan", "--observe", "inventory", "--max-delete", "1", "--allow-mass-delete", "--specs", str(specs)]
    run = pixel_in_process([*args, "--scale", "stream", "-out", str(streamed)], env)
    assert run.code == 0, run.err
    assert pixel_in_process([*args, "-out", str(in_memory)], env).code == 0
    assert streamed.read_bytes() == in_memory.read_bytes()
    assert "delete disk:set/stale.jsonl" in run.out
    assert "later.jsonl" not in run.out  # the bucket holds it now: no delete, nothing to pull


def test_a_targeted_streamed_plan_is_the_targeted_plan(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    root = tmp_path / "data"
    _tree(root, {"raw/a.jsonl": b"a\n", "raw/b.jsonl": b"b\n", "other/c.jsonl": b"c\n"})
    specs = write_specs(
        tmp_path / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[
            {"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True},
            {"name": "other", "from": "disk:other", "to": "s3:datasets/other/"},
        ],
    )
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    streamed, in_memory = tmp_path / "streamed.json", tmp_path / "memory.json"
    args = ["plan", "--target", "raw", "--specs", str(specs)]
    run = pixel_in_process([*args, "--scale", "stream", "-out", str(streamed)], env)
    assert run.code == 0, run.err
    assert pixel_in_process([*args, "-out", str(in_memory)], env).code == 0
    assert streamed.read_bytes() == in_memory.read_bytes()
    assert "Plan: 2 to upload, 0 to update, 0 to delete." in run.out
