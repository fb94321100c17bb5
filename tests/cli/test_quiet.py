"""`-q` on apply: no plan preview, only the summary and errors; `pixel plan -q` still prints the plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.pixelenv import pixel_in_process, write_specs

pytestmark = pytest.mark.integration


def test_quiet_apply_prints_the_summary_not_the_plan(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    for i in range(3):
        (root / "raw" / f"f{i}.jsonl").write_bytes(b"x\n" * (i + 1))
    specs = write_specs(
        tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True}],
    )
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    planned = pixel_in_process(["plan", "-q", "--specs", str(specs)], env)
    assert "  + datasets/raw/f0.jsonl" in planned.out  # the plan is what `pixel plan` is for

    applied = pixel_in_process(["apply", "-q", "--auto-approve", "--specs", str(specs)], env)
    assert applied.code == 0, applied.err
    # Before: the whole preview (a heading and a line per action) came first.
    assert applied.out.splitlines() == [
        "Plan: 3 to upload, 0 to update, 0 to delete.",
        "",
        "Apply complete! 3 done, 0 failed, 0 actions not started (12 B uploaded, 0 B downloaded).",
    ]
    assert applied.err == ""
