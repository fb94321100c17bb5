"""Every `pixel apply` flag against a saved plan, on SeaweedFS: a guard flag may only tighten the limits the
plan was made with, and is then enforced; a flag with nothing to act on in a saved plan is refused; none is
ignored. Every refusal leaves the bucket exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from tests.integration.pixelenv import pixel_in_process, write_specs

pytestmark = pytest.mark.integration

# Flags every command shares (where the specs are, how to log): they act the same with or without a plan file.
SHARED = {"specs", "log_format", "env_file", "verbose", "quiet", "s3_connect_timeout", "s3_read_timeout"}

# flag -> (arguments, exit code, what the message says). The saved plan deletes 4 objects, was made with the
# default --max-delete 100 and without --allow-mass-delete, and has one finding.
REFUSED: dict[str, tuple[list[str], str]] = {
    "max_delete": (["--max-delete", "3"], "more than --max-delete 3"),
    "allow_mass_delete": (["--allow-mass-delete"], "--allow-mass-delete would loosen"),
    "strict": (["--strict"], "--strict: the plan has 1 finding(s)"),
    "rehash_all": (["--rehash-all"], "--rehash-all re-reads local files"),
    "targets": (["--target", "raw"], "--target goes with `pixel plan -out FILE`"),
    "observe_mode": (["--observe", "inventory"], "a saved plan was observed when it was made"),
    "relist": (["--relist-prefix", "raw/"], "a saved plan was observed when it was made"),
    "compact": (["--compact"], "`pixel show --compact FILE`"),
    "output_format markdown": (["--format", "markdown"], "`pixel show --format markdown FILE`"),
    "executor dask": (["--executor", "dask"], "--executor dask needs the scheduler's address"),
    "scheduler local": (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler only apply with --executor dask"),
    "batch_actions local": (["--batch-actions", "10"], "--batch-actions only apply with --executor dask"),
}
# Every count limit (`--max-*`), given above what the plan was made with, would loosen it.
APPLY_PARAMS = {p.name for p in main.commands["apply"].params}
LIMITS = [(name, "--" + name.replace("_", "-")) for name in sorted(APPLY_PARAMS) if name.startswith("max_")]
REFUSED |= {f"{name} loosened": ([flag, "1000000"], f"would loosen the saved plan's {flag}") for name, flag in LIMITS}
# Applied together at the end: each acts on a saved plan as it does without one (--max-delete 4 tightens
# the saved 100 to exactly what the plan deletes).
ACCEPTED = [
    "--auto-approve", "--parallelism", "2", "--lock-timeout", "5s", "--format", "json", "--executor", "local",
    "--max-delete", "4", "--scale", "memory",
]
ACCEPTED_NAMES = {
    "auto_approve", "parallelism", "lock_timeout", "output_format", "executor", "max_delete", "plan_file", "scale",
}


def listing(client: Any, bucket: str) -> dict[str, str]:
    return {o["Key"]: o["ETag"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_every_apply_flag_is_covered() -> None:
    covered = {name.split(" ")[0] for name in REFUSED} | ACCEPTED_NAMES | SHARED
    assert covered == APPLY_PARAMS


def test_apply_flags_with_a_saved_plan_tighten_or_are_refused(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    (root / "kept").mkdir()
    for i in range(20):
        (root / "raw" / f"{i:02}.jsonl").write_bytes(f'{{"i": {i}}}\n'.encode())
    specs = write_specs(
        tmp_path / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[
            {"name": "raw", "from": "disk:raw", "to": "s3:raw/", "prune": True},
            {"name": "kept", "from": "disk:kept", "to": "s3:kept/"},
        ],
    )
    env = seaweed.env()
    client = seaweed.client()
    assert pixel_in_process(["apply", "--specs", str(specs), "--auto-approve"], env).code == 0
    client.put_object(Bucket=bucket, Key="kept/only-in-s3.jsonl", Body=b"{}\n")  # a finding: kept never prunes
    for i in range(4):
        (root / "raw" / f"{i:02}.jsonl").unlink()
    plan_file = tmp_path / "plan.json"
    planned = pixel_in_process(["plan", "--specs", str(specs), "-out", str(plan_file)], env)
    assert planned.code == 0, planned.out + planned.err
    assert json.loads(plan_file.read_text())["guard_limits"]["max_delete"] == 100
    before = listing(client, bucket)
    assert len(before) == 21

    for name, (flags, message) in REFUSED.items():
        refused = pixel_in_process(["apply", "--specs", str(specs), *flags, str(plan_file)], env)
        assert refused.code == 1, (name, refused.out, refused.err)
        assert message in refused.err, (name, refused.err)
        assert "Traceback" not in refused.err
        assert listing(client, bucket) == before, name  # nothing deleted, no lock left behind
        if "--format" not in flags:  # under --format json the refusal is the report on stdout, for CI
            as_json = pixel_in_process(
                ["apply", "--specs", str(specs), "--format", "json", *flags, str(plan_file)], env
            )
            assert as_json.code == 1 and json.loads(as_json.out)["status"] == "error", (name, as_json.out)
            assert message in json.loads(as_json.out)["errors"][0]

    applied = pixel_in_process(["apply", "--specs", str(specs), *ACCEPTED, str(plan_file)], env)
    assert applied.code == 0, applied.out + applied.err
    assert json.loads(applied.out)["counts"] == {"done": 4, "failed": 0, "skipped": 0}
    assert sorted(listing(client, bucket)) == sorted(set(before) - {f"raw/{i:02}.jsonl" for i in range(4)})
