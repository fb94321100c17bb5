"""pixel plan / apply end to end against a real SeaweedFS server over HTTP."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pixelenv import pixel_in_process, pixel_rss, write_specs

pytestmark = pytest.mark.integration


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def world(tmp_path: Path, seaweed: Any, bucket: str) -> dict[str, Any]:
    root = tmp_path / "data"
    (root / "raw" / "cot").mkdir(parents=True)
    (root / "processed").mkdir(parents=True)
    (root / "raw" / "cot" / "a.jsonl").write_bytes(b'{"id": 1}\n')
    (root / "raw" / "cot" / "b.jsonl").write_bytes(b'{"id": 2}\n' * 50)
    (root / "raw" / "notes.txt").write_bytes(b"excluded by the include glob")
    (root / "processed" / "p.json").write_bytes(b'{"p": true}')
    specs = write_specs(
        tmp_path / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[
            {"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "include": '["**/*.jsonl"]',
             "prune": True},
            {"name": "processed", "from": "disk:processed", "to": "s3:datasets/processed/", "prune": False},
        ],
    )
    return {"root": root, "specs": specs, "env": seaweed.env(), "client": seaweed.client(), "bucket": bucket}


def keys(client: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_new_files_are_uploaded_with_md5_metadata_then_no_changes(world: dict[str, Any]) -> None:
    args = ["--specs", str(world["specs"])]
    first = pixel_in_process(["plan", "--detailed-exitcode", *args], world["env"])
    assert first.code == 2, first.err
    assert "+ datasets/raw/cot/a.jsonl" in first.out
    assert first.out.rstrip().endswith("Plan: 3 to upload, 0 to update, 0 to delete.")
    assert "notes.txt" not in first.out

    applied = pixel_in_process(["apply", "--auto-approve", *args], world["env"])
    assert applied.code == 0, applied.out + applied.err
    assert "Apply complete! 3 done, 0 failed, 0 actions not started" in applied.out

    client, bucket = world["client"], world["bucket"]
    assert keys(client, bucket) == ["datasets/processed/p.json", "datasets/raw/cot/a.jsonl", "datasets/raw/cot/b.jsonl"]
    head = client.head_object(Bucket=bucket, Key="datasets/raw/cot/b.jsonl")
    assert head["Metadata"]["md5"] == md5(b'{"id": 2}\n' * 50)
    body = client.get_object(Bucket=bucket, Key="datasets/raw/cot/b.jsonl")["Body"].read()
    assert body == (world["root"] / "raw" / "cot" / "b.jsonl").read_bytes()

    again = pixel_in_process(["plan", "--detailed-exitcode", *args], world["env"])
    assert again.code == 0, again.out + again.err
    assert again.out.strip() == "No changes. Storage matches the specs."


def test_same_size_edit_is_detected_and_reuploaded(world: dict[str, Any]) -> None:
    args = ["--specs", str(world["specs"])]
    assert pixel_in_process(["apply", "--auto-approve", *args], world["env"]).code == 0
    path = world["root"] / "raw" / "cot" / "a.jsonl"
    st = path.stat()
    path.write_bytes(b'{"id": 9}\n')  # same size, different bytes
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime: size+time sync would miss it
    planned = pixel_in_process(["plan", *args], world["env"])
    assert "~ datasets/raw/cot/a.jsonl" in planned.out
    assert f"content differs: md5 {md5(path.read_bytes())[:8]}…" in planned.out
    assert planned.out.rstrip().endswith("Plan: 0 to upload, 1 to update, 0 to delete.")
    assert pixel_in_process(["apply", "--auto-approve", *args], world["env"]).code == 0
    got = world["client"].get_object(Bucket=world["bucket"], Key="datasets/raw/cot/a.jsonl")["Body"].read()
    assert got == b'{"id": 9}\n'


def test_extra_objects_are_pruned_only_where_pruning_is_allowed(world: dict[str, Any]) -> None:
    client, bucket = world["client"], world["bucket"]
    client.put_object(Bucket=bucket, Key="datasets/raw/stale.jsonl", Body=b"old")
    client.put_object(Bucket=bucket, Key="datasets/processed/keep.json", Body=b"theirs")
    client.put_object(Bucket=bucket, Key="elsewhere/untouched.bin", Body=b"x")
    args = ["--specs", str(world["specs"])]
    planned = pixel_in_process(["plan", *args], world["env"])
    assert "- datasets/raw/stale.jsonl" in planned.out
    assert "keep.json" in planned.out and "does not prune" in planned.out  # reported as a finding
    assert "untouched" not in planned.out
    assert pixel_in_process(["apply", "--auto-approve", *args], world["env"]).code == 0
    remaining = keys(client, bucket)
    assert "datasets/raw/stale.jsonl" not in remaining
    assert "datasets/processed/keep.json" in remaining
    assert "elsewhere/untouched.bin" in remaining


def test_apply_without_a_terminal_refuses_without_auto_approve(world: dict[str, Any]) -> None:
    result = pixel_in_process(["apply", "--specs", str(world["specs"])], world["env"])
    assert result.code == 1
    assert "--auto-approve" in result.err
    assert keys(world["client"], world["bucket"]) == []


def test_missing_bucket_is_one_clear_error(world: dict[str, Any], tmp_path: Path) -> None:
    spec = world["specs"] / "specs.yaml"
    spec.write_text(spec.read_text().replace(f"bucket: {world['bucket']}", "bucket: no-such-bucket-here"))
    result = pixel_in_process(["plan", "--specs", str(world["specs"])], world["env"])
    assert result.code == 1
    assert 'bucket "no-such-bucket-here" does not exist' in result.err
    assert "Traceback" not in result.err


@pytest.mark.slow
def test_100_mib_upload_keeps_peak_rss_under_150_mib(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    root = tmp_path / "big"
    (root / "shards").mkdir(parents=True)
    big = root / "shards" / "train-000.jsonl"
    digest = hashlib.md5()
    block = os.urandom(1024 * 1024)
    with open(big, "wb") as f:
        for i in range(100):
            chunk = block[i:] + block[:i]
            digest.update(chunk)
            f.write(chunk)
    specs = write_specs(
        tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
        mappings=[{"name": "shards", "from": "disk:shards", "to": "s3:final_dataset/train/"}],
    )
    run = pixel_rss(["apply", "--auto-approve", "--specs", str(specs)], seaweed.env())
    assert run.code == 0, run.err
    head = seaweed.client().head_object(Bucket=bucket, Key="final_dataset/train/train-000.jsonl")
    assert head["ContentLength"] == 100 * 1024 * 1024
    assert head["Metadata"]["md5"] == digest.hexdigest()
    assert run.max_rss_kib < 150 * 1024, f"peak RSS {run.max_rss_kib / 1024:.0f} MiB"
