"""`--log-format json` means stderr is JSON lines, also under `apply --format json` (whose stdout is the report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.input_world import World, make_world
from tests.integration.pixelenv import Run, pixel

pytestmark = pytest.mark.integration


def json_lines(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"stderr line is not JSON: {line!r}\n--- all of stderr:\n{text}")
    return events


def run(world: World, *args: str) -> Run:
    """The real console script: stderr exactly as CI sees it."""
    return pixel(["--log-format", "json", *args[:1], "--specs", str(world.specs), *args[1:]], world.env)


@pytest.fixture
def world(tmp_path: Path, seaweed: Any, bucket: str) -> World:
    w = make_world(tmp_path, seaweed, bucket, {"name": "raw", "from": "disk:raw", "to": "s3:raw/", "prune": True})
    (w.root / "raw").mkdir()
    for i in range(6):
        (w.root / "raw" / f"f{i}.txt").write_bytes(b"x" * i)
    return w


def test_apply_json_keeps_stderr_pure_json_lines(world: World) -> None:
    applied = run(world, "apply", "--format", "json", "--auto-approve")
    assert applied.code == 0, applied.err
    assert json.loads(applied.out)["status"] == "ok"
    events = json_lines(applied.err)
    plan = [e for e in events if e["event"] == "plan"]
    assert plan and plan[0]["summary"] == "Plan: 6 to upload, 0 to update, 0 to delete."
    assert sum(e["event"] == "action finished" for e in events) == 6

    # A saved plan, and a refused one: their notes and errors are JSON events too.
    for i in range(6):
        (world.root / "raw" / f"f{i}.txt").unlink()
    assert run(world, "plan", "--format", "json", "-out", str(world.plan)).code == 1
    refused = run(world, "apply", "--format", "json", str(world.plan))
    assert refused.code == 1
    assert json.loads(refused.out)["status"] == "error"
    errors = [e for e in json_lines(refused.err) if e["event"] == "error"]
    assert "cannot be applied: it was saved with errors" in errors[0]["message"]

    assert run(world, "plan", "--allow-mass-delete", "--format", "json", "-out", str(world.plan)).code == 0
    saved = run(world, "apply", "--format", "json", str(world.plan))
    assert saved.code == 0, saved.err
    notes = [e["message"] for e in json_lines(saved.err) if e["event"] == "note"]
    assert any(n.startswith("Applying the saved plan") for n in notes), notes


def test_spec_errors_are_json_lines_too(world: World) -> None:
    (world.specs / "specs.yaml").write_text("stores: [\n")
    refused = run(world, "apply", "--format", "json", "--auto-approve")
    assert refused.code == 1
    messages = [e["message"] for e in json_lines(refused.err) if e["event"] == "error"]
    assert any("invalid YAML" in m for m in messages) and any("nothing was touched" in m for m in messages)
