"""`pixel import STORE:PREFIX` on a bucket that already holds data, then `pixel plan` says No changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.pixelenv import pixel_in_process

pytestmark = pytest.mark.integration

DEMO_KEYS = (
    "datasets/gdrive/raw/cot/part-0.jsonl",
    "datasets/gdrive/raw/cot/part-1.jsonl",
    "datasets/gdrive/raw/organise/clinical_cot.jsonl",
    "datasets/gdrive/processed/cot_reasoning/clinical_cot.jsonl",
    "datasets/gdrive/processed/priority/priority_mix.jsonl",
    "datasets/gdrive/processed/edge_cases/edge_adversarial.jsonl",
    "datasets/gdrive/processed/professional_therapeutic/therapist_notes.json",
)


def _stores(spec_dir: Path, endpoint: str, bucket: str) -> Path:
    spec_dir.mkdir(parents=True)
    (spec_dir / "stores.yaml").write_text(
        "stores:\n"
        "  pixel-data:\n"
        "    type: s3\n"
        f"    bucket: {bucket}\n"
        f"    endpoint: {endpoint}\n"
        "    region: us-east-1\n"
        "    addressing_style: path\n"
        "    checksum: when_required\n"
    )
    return spec_dir


def test_import_then_plan_prints_no_changes(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    client = seaweed.client()
    for i, key in enumerate(DEMO_KEYS):
        client.put_object(Bucket=bucket, Key=key, Body=b'{"row": %d}\n' % i)
    client.put_object(Bucket=bucket, Key="elsewhere/not-imported.txt", Body=b"x")
    specs = _stores(tmp_path / "specs", seaweed.endpoint, bucket)
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache")}

    imported = pixel_in_process(["import", "pixel-data:datasets/gdrive/", "--specs", str(specs)], env)
    assert imported.code == 0, imported.err
    assert "2 tier(s) for 7 objects" in imported.out

    written = yaml.safe_load((specs / "imported-pixel-data.yaml").read_text())
    assert written["tiers"] == {
        "processed": {
            "at": "pixel-data:datasets/gdrive/processed/",
            "ownership": "shared",
            "categories": ["cot_reasoning", "edge_cases", "priority", "professional_therapeutic"],
        },
        "raw": {"at": "pixel-data:datasets/gdrive/raw/", "ownership": "shared", "categories": ["cot", "organise"]},
    }

    planned = pixel_in_process(["plan", "--detailed-exitcode", "--specs", str(specs)], env)
    assert planned.code == 0, planned.out + planned.err
    assert planned.out.strip() == "No changes. Storage matches the specs."

    # The tiers are real to pixel: status counts every imported object in them.
    status = pixel_in_process(["status", "--format", "json", "--specs", str(specs)], env)
    assert status.code == 0, status.err
    assert '"raw"' in status.out and '"processed"' in status.out

    explained = pixel_in_process(["explain", "datasets/gdrive/raw/cot/part-0.jsonl", "--specs", str(specs)], env)
    assert explained.code == 0, explained.err
    assert "tier 'raw': pixel-data:datasets/gdrive/raw/ (ownership shared" in explained.out
    assert "the plan: nothing to do" in explained.out

    graph = pixel_in_process(["graph", "--specs", str(specs)], env)
    assert graph.code == 0, graph.err
    assert graph.out.startswith("digraph pixel_plan {") and "subgraph" not in graph.out  # nothing to do, no nodes

    again = pixel_in_process(["import", "pixel-data:datasets/gdrive/", "--specs", str(specs)], env)
    assert again.code == 1 and "already exists" in again.err


def test_import_of_an_empty_prefix_or_unknown_store_is_one_clear_error(
    tmp_path: Path, seaweed: Any, bucket: str
) -> None:
    specs = _stores(tmp_path / "specs", seaweed.endpoint, bucket)
    env = seaweed.env()
    empty = pixel_in_process(["import", "pixel-data:nothing/", "--specs", str(specs)], env)
    assert empty.code == 1 and "holds no objects" in empty.err and "Traceback" not in empty.err
    unknown = pixel_in_process(["import", "nope:x/", "--specs", str(specs)], env)
    assert unknown.code == 1 and "'nope' is not an S3 store" in unknown.err
