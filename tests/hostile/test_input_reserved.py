"""pixel's own space in a bucket (.pixel/, and a custom lock_key's folder) is never a mapping's, nor its data."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.model import (
    Action,
    ActionKind,
    Change,
    Desired,
    LocalStoreSpec,
    MappingSpec,
    ObjectRef,
    Plan,
    Precondition,
    S3StoreSpec,
)
from reconciler.plan.saved_checks import problems

pytestmark = pytest.mark.integration


def specs_text(endpoint: str, bucket: str, root: Path, mappings: str, lock_key: str = "") -> str:
    lock = f"    lock_key: {lock_key}\n" if lock_key else ""
    return (
        "stores:\n"
        f"  s3b:\n    type: s3\n    bucket: {bucket}\n    endpoint: {endpoint}\n    region: us-east-1\n"
        f"    addressing_style: path\n    checksum: when_required\n{lock}"
        f"  loc:\n    type: local\n    root: {root}\n"
        f"mappings:\n{mappings}"
    )


def cli(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args, env={**(env or {}), "NO_COLOR": "1"}, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("to", "lock_key", "space"),
    [
        ("s3b:.pixel/", "", ".pixel/"),
        ("s3b:.pixel", "", ".pixel/"),
        ("s3b:.pixel/uploads/mine/", "", ".pixel/"),
        ("s3b:locks/", "locks/pixel.lock", "locks/"),
        ("s3b:locks/sub/", "locks/pixel.lock", "locks/"),
    ],
)
def test_a_mapping_into_pixels_own_space_is_a_located_spec_error(
    tmp_path: Path, to: str, lock_key: str, space: str
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    mapping = f'  - name: own\n    from: "loc:own"\n    to: "{to}"\n'
    (specs / "specs.yaml").write_text(specs_text("http://127.0.0.1:1", "b-ucket", tmp_path, mapping, lock_key))
    code, out, err = cli(["validate", "--specs", str(specs)])
    assert code == 1, out
    shown = os.path.relpath(specs / "specs.yaml")
    where = shown if not shown.startswith("..") else str(specs / "specs.yaml")
    line = 16 if lock_key else 15
    assert (
        f'{where}:{line}: mappings[0].to: prefix "{to}" lies in pixel\'s own space "{space}" of store "s3b" '
        "(its lock, move scratch and upload records); choose another"
    ) in err, err


def test_a_whole_bucket_mapping_never_sees_pixels_own_objects(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    root = tmp_path / "data"
    (root / "all").mkdir(parents=True)
    (root / "all" / "a.txt").write_bytes(b"a")
    specs = tmp_path / "specs"
    specs.mkdir()
    mapping = '  - name: all\n    from: "loc:all"\n    to: "s3b:"\n    prune: true\n'
    (specs / "specs.yaml").write_text(specs_text(seaweed.endpoint, bucket, root, mapping, "locks/pixel.lock"))
    env = seaweed.env()
    client = seaweed.client()
    # What a killed apply leaves behind: a parked swap copy, an upload record; and the lock folder's neighbours.
    for key in (".pixel/tmp/0123/a.txt", ".pixel/uploads/0f0f.json", "locks/pixel.lock", "locks/notes.txt"):
        client.put_object(Bucket=bucket, Key=key, Body=b"pixel's own")

    code, out, err = cli(["plan", "--specs", str(specs), "--format", "json"], env)
    assert code == 0, out + err
    plan = json.loads(out)
    assert [(a["kind"], a["key"]) for a in plan["actions"]] == [("upload", "a.txt")]
    assert plan["findings"] == [] and plan["errors"] == []
    assert plan["object_counts"] == {"all": 0}

    code, out, err = cli(["status", "--specs", str(specs), "--format", "json"], env)
    assert code == 0, out + err
    status = json.loads(out)
    assert status["mappings"]["all"]["local_only"]["count"] == 1
    assert status["mappings"]["all"]["s3_only"]["count"] == 0


def test_a_saved_write_into_pixels_own_space_is_refused_even_under_a_whole_bucket_mapping() -> None:
    desired = Desired(
        stores={"loc": LocalStoreSpec("loc", "/x"), "s3b": S3StoreSpec("s3b", "b", lock_key="locks/pixel.lock")},
        mappings=(MappingSpec("all", "loc", "all", "s3b", ""),),
    )
    for key in (".pixel/uploads/0f0f.json", "locks/pixel.lock", "locks/notes.txt"):
        upload = Action(
            id=f"upload:s3b:{key}", kind=ActionKind.UPLOAD, change=Change.CREATE, mapping="all",
            target=ObjectRef("s3b", key), reason="new file", source=ObjectRef("loc", f"all/{key}"),
            precondition=Precondition(target_absent=True),
        )
        assert problems(desired, Plan((upload,), ())) == [
            f"upload s3b:{key} lies in pixel's own space of store 's3b', which no mapping manages"
        ]
