"""A warm no-op `pixel apply` sends every S3 request on the direct transport: boto3 and botocore are never imported.

The apply takes the bucket lock (a conditional PUT, its renewal and its conditional DELETE), lists the
upload journal for a killed apply's leftovers, checks the bucket, lists and plans: each of those went
through a botocore client once, and importing boto3 and building a client cost every apply about 0.5 s.
Measured the way the issue asks, with `python -X importtime -m reconciler.cli apply`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.dev.seaweed import SeaweedServer
from tests.integration.pixelenv import push_world

pytestmark = pytest.mark.integration

# yaml and structlog too (issue 28): the specs' Desired is cached, and plain console lines are pixel's own.
HEAVY = ("boto3", "botocore", "s3transfer", "yaml", "structlog")


def imported_packages(importtime: str) -> set[str]:
    """The top-level packages of every `import time: self | cumulative | name` line of -X importtime."""
    names = set()
    for line in importtime.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if not name.startswith("imported package"):
                names.add(name.split(".")[0])
    return names


def apply(specs: Path, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-X", "importtime", "-m", "reconciler.cli", "apply", "--specs", str(specs), *flags]
    # Run from the specs' folder: `-m` puts the working directory first on sys.path, before PYTHONPATH.
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=specs.parent)


def test_a_warm_no_op_apply_imports_neither_boto3_botocore_yaml_nor_structlog(
    seaweed: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    specs, env = push_world(seaweed, bucket, tmp_path, 12)
    first = apply(specs, env, "--auto-approve", "--format", "json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["counts"]["done"] == 12, first.stdout

    warm = apply(specs, env, "--auto-approve")
    assert warm.returncode == 0, warm.stderr
    assert "No changes" in warm.stdout, warm.stdout  # planned under the lock, nothing to do
    imported = imported_packages(warm.stderr)
    assert "reconciler" in imported and "click" in imported, "-X importtime lines were read"
    assert imported.isdisjoint(HEAVY), f"a warm no-op apply imported {sorted(imported & set(HEAVY))}"
    lock = seaweed.client().list_objects_v2(Bucket=bucket, Prefix=".pixel/").get("Contents", [])
    assert lock == [], "the lock was taken and released (conditional PUT and DELETE) on the direct transport"
