"""The line that closes a plan says exactly what is true: refused, changes, findings, or truly nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.hostile.input_world import World, make_world

pytestmark = pytest.mark.integration
CLEAN = "No changes. Storage matches the specs."


@pytest.fixture
def world(tmp_path: Path, seaweed: Any, bucket: str) -> World:
    """In sync, plus one object the (non-pruning) mapping leaves alone: an `unmanaged` finding, no action."""
    w = make_world(tmp_path, seaweed, bucket, {"name": "raw", "from": "disk:raw", "to": "s3:raw/"})
    (w.root / "raw").mkdir()
    (w.root / "raw" / "a.txt").write_bytes(b"a")
    assert w.pixel("apply", "--auto-approve").code == 0
    return w


def test_findings_without_actions_are_not_called_storage_matching(world: World) -> None:
    assert world.pixel("plan").out.splitlines()[-1] == CLEAN
    world.client.put_object(Bucket=world.bucket, Key="raw/stray.txt", Body=b"someone else's")

    text = world.pixel("plan")
    assert text.code == 0, text.err
    assert "! unmanaged: [raw] s3:raw/stray.txt" in text.out
    assert text.out.splitlines()[-1] == "No changes to apply; 1 finding above."
    assert CLEAN not in text.out

    markdown = world.pixel("plan", "--format", "markdown")
    assert markdown.out.splitlines()[0] == "### pixel plan: no changes to apply, 1 finding(s)"
    assert "**No changes to apply; 1 finding below.**" in markdown.out
    assert CLEAN not in markdown.out and "✅" not in markdown.out

    (world.root / "raw" / "b.txt").write_bytes(b"b")
    both = world.pixel("plan")
    assert both.out.splitlines()[-1] == "Plan: 1 to upload, 0 to update, 0 to delete. 1 finding above."


def test_a_strict_refusal_is_not_called_no_changes(world: World) -> None:
    world.client.put_object(Bucket=world.bucket, Key="raw/stray.txt", Body=b"someone else's")
    strict = world.pixel("plan", "--strict")
    assert strict.code == 1
    assert "--strict: the plan has 1 finding(s)" in strict.out
    assert strict.out.splitlines()[-1] == "Plan refused: 1 error above; nothing will be applied; 1 finding above."
    assert "No changes" not in strict.out

    (world.root / "raw" / "b.txt").write_bytes(b"b")
    markdown = world.pixel("plan", "--strict", "--format", "markdown")
    assert (
        "**Plan refused: 1 error above; nothing will be applied (it would: 1 to upload, 0 to update, 0 to delete); "
        "1 finding below.**"
    ) in markdown.out


def test_missing_images_are_never_called_storage_matching(tmp_path: Path, seaweed: Any, bucket: str) -> None:
    """`count` declares two images, one exists on neither side: the plan lists it and never says it matches."""
    w = make_world(tmp_path, seaweed, bucket, {"name": "raw", "from": "disk:raw", "to": "s3:raw/"})
    (w.root / "raw").mkdir()
    (w.specs / "actors.yaml").write_text(
        "actors:\n"
        "  local: disk:actors\n"
        "  s3: s3:actors/\n"
        "  manifests: disk:manifests\n"
        '  list: [{id: "0001", name: "0001_a", count: 2}]\n'
    )
    images = w.root / "actors" / "0001_a" / "training_data"
    images.mkdir(parents=True)
    (images / "0001_a_0.jpg").write_bytes(b"\xff\xd8 an image")
    (w.root / "manifests").mkdir()
    assert w.pixel("apply", "--auto-approve").code == 0

    text = w.pixel("plan")
    assert text.code == 0, text.err
    assert "0001_a_1.jpg" in text.out and "missing" in text.out
    assert CLEAN not in text.out
    assert text.out.splitlines()[-1] == "No changes to apply; 1 finding above."
    markdown = w.pixel("plan", "--format", "markdown")
    assert CLEAN not in markdown.out and "✅" not in markdown.out
    again = w.pixel("apply", "--auto-approve")
    assert again.code == 0 and CLEAN not in again.out and "0001_a_1.jpg" in again.out
