"""The warm no-op plan needs neither boto3/botocore, jsonschema, YAML nor structlog; parallel listing equals
sequential listing."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reconciler.dev.seaweed import SeaweedServer
from reconciler.model import S3StoreSpec
from reconciler.stores.s3 import S3Store
from reconciler.stores.s3 import listing as s3_listing
from reconciler.stores.s3.direct.raw import direct
from tests.integration.pixelenv import push_world

# yaml: the Desired built from the same spec bytes is cached; structlog (and the asyncio, rich and pygments it
# brings): plain console lines are rendered by pixel; click.shell_completion: only completion needs it.
HEAVY = (
    "boto3", "botocore", "jsonschema", "awscrt", "s3transfer", "yaml", "structlog", "asyncio", "rich", "pygments",
    "importlib.metadata", "click.shell_completion", "urllib.request",
)
# Runs the real CLI in this process's interpreter and reports which heavy packages it imported.
PROBE = (
    f"import atexit, json, sys\nHEAVY = {HEAVY!r}\n"
    "atexit.register(lambda: sys.stderr.write('\\nIMPORTED=' + json.dumps(sorted({m if m in HEAVY else m.split('.')[0]"
    " for m in sys.modules if m in HEAVY or m.split('.')[0] in HEAVY})) + '\\n'))\n"
    "from reconciler.cli import main\n"
    "sys.argv = ['pixel', *sys.argv[1:]]\n"
    "main()\n"
)


def imported(args: list[str], env: dict[str, str]) -> tuple[int, list[str], str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=300)
    line = next(line for line in proc.stderr.splitlines() if line.startswith("IMPORTED="))
    return proc.returncode, json.loads(line.removeprefix("IMPORTED=")), proc.stdout + proc.stderr


@pytest.mark.integration
def test_warm_plan_of_a_push_mapping_imports_no_boto3_botocore_jsonschema_yaml_or_structlog(
    seaweed: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    specs, env = push_world(seaweed, bucket, tmp_path, 30)
    code, _, out = imported(["apply", "--specs", str(specs), "--auto-approve"], env)
    assert code == 0, out
    code, heavy, out = imported(["plan", "--specs", str(specs), "--detailed-exitcode"], env)
    assert code == 0, out  # no changes, and the plan did run
    assert "No changes" in out
    assert heavy == [], f"a warm no-op plan imported {heavy}"
    # A changed spec is read and validated again (yaml and jsonschema come back), and a bad one is still refused.
    text = (specs / "specs.yaml").read_text()
    (specs / "specs.yaml").write_text(text.replace("prune: true", "prune: yes-please"))
    code, heavy, out = imported(["plan", "--specs", str(specs)], env)
    assert code == 1 and "prune" in out and {"jsonschema", "yaml"} <= set(heavy), out
    (specs / "specs.yaml").write_text(text)
    # Corrupt caches (the Desired's, the validation's) only mean the specs are read and validated.
    for cache in [tmp_path / "cache" / "specs-valid.json", *(tmp_path / "cache" / "desired").glob("*.json")]:
        cache.write_text("{not json")
    code, heavy, out = imported(["plan", "--specs", str(specs), "--detailed-exitcode"], env)
    assert code == 0 and {"jsonschema", "yaml"} <= set(heavy), out
    code, heavy, out = imported(["plan", "--specs", str(specs), "--detailed-exitcode"], env)
    assert code == 0 and heavy == [], out  # and written again


# Odd keys (spaces, '+', '%', unicode, XML specials), keys that sort around '/', several pages.
ODD_KEYS = ["p/a", "p/a b", "p/a+b", "p/a%2F", "p/a-b", "p/a/x", "p/a/y/z", "p/a0", "p/ünï/código", "p/x&<y>.json"]
MANY = [f"p/many/{i:05d}" for i in range(2_350)] + [f"p/top-{i:04d}" for i in range(1_100)]


def listing(store: S3Store, prefix: str, known: list[str] | None) -> list[tuple[str, int, str | None]]:
    return [(e.key, e.size, e.etag) for e in store.list(prefix, known)]


@pytest.mark.integration
@pytest.mark.slow
def test_parallel_listing_equals_a_sequential_one_on_seaweedfs(
    seaweed: SeaweedServer, bucket: str, aws_env: dict[str, str]
) -> None:
    client = seaweed.client()
    # Put side by side: one at a time, 3,460 round trips were most of this test's minute under load.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=key.encode()), ODD_KEYS + MANY))
    spec = S3StoreSpec(name="s3", bucket=bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path")
    raw = direct(spec, pool_size=4)
    assert raw is not None  # static keys in the environment and a path-style endpoint need no botocore
    sequential = S3Store(spec, list_concurrency=1)
    expected = listing(sequential, "p/", None)
    # SeaweedFS lists a tree: a directory's keys right after its name ("p/a", "p/a/x", "p/a b").
    assert [k for k, _, _ in expected] == sorted(ODD_KEYS + MANY, key=s3_listing.tree_order)
    parallel = S3Store(spec, list_concurrency=6)
    assert listing(parallel, "p/", None) == expected  # by directory
    every_key = sorted(ODD_KEYS + MANY)
    cases: dict[str, list[str]] = {
        "every key a boundary": every_key,
        "boundaries equal to keys": every_key[::997],
        "boundaries between keys and past the end": ["p/a!", "p/a/x0", "p/m", "p/zzz", "p/\U0010ffff"],
        "a boundary that is a file and a directory": ["p/a", "p/a/y", "p/many"],
        "empty ranges": ["p/b", "p/c", "p/d", "p/e"],
        "nothing local": [],
        "keys outside the prefix": ["o/x", "q/y"],
    }
    for name, known in cases.items():
        assert listing(parallel, "p/", known) == expected, name
    assert listing(parallel, "p/nothing-here/", every_key) == []
    # A range cut at every 1,000th known key: the cuts the observer makes for a push mapping.
    assert s3_listing.boundaries(every_key) == every_key[999::1000]
