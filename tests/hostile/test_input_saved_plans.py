"""Saved plans are input: apply re-derives every guard and never trusts what the file says about itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.hostile.input_world import World, make_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path, seaweed: Any, bucket: str) -> World:
    """35 objects uploaded under a pruning mapping, then 24 of the local files deleted (69%)."""
    w = make_world(tmp_path, seaweed, bucket, {"name": "raw", "from": "disk:raw", "to": "s3:raw/", "prune": True})
    (w.root / "raw").mkdir()
    for i in range(35):
        (w.root / "raw" / f"f{i:02d}.txt").write_bytes(f"file {i}\n".encode())
    assert w.pixel("apply", "--auto-approve").code == 0
    for i in range(24):
        (w.root / "raw" / f"f{i:02d}.txt").unlink()
    return w


def _forge_verdict(world: World) -> dict[str, Any]:
    data = world.saved()
    data["applyable"], data["errors"] = True, []
    world.save(data)
    return data


def test_a_refused_mass_delete_stays_refused_when_the_file_claims_applyable(world: World) -> None:
    planned = world.pixel("plan", "-out", str(world.plan))
    assert planned.code == 1 and "would delete 24 of the 35 objects" in planned.out, planned.out
    _forge_verdict(world)

    refused = world.pixel("apply", str(world.plan))
    assert refused.code == 1, refused.out + refused.err
    assert "would delete 24 of the 35 objects under s3:raw/" in refused.err
    assert "Apply complete" not in refused.out
    assert len(world.keys()) == 35


def test_a_refused_max_delete_stays_refused_when_the_file_claims_applyable(world: World) -> None:
    planned = world.pixel("plan", "--allow-mass-delete", "--max-delete", "10", "-out", str(world.plan))
    assert planned.code == 1 and "more than --max-delete 10" in planned.out, planned.out
    _forge_verdict(world)
    refused = world.pixel("apply", str(world.plan))
    assert refused.code == 1 and "more than --max-delete 10" in refused.err, refused.out + refused.err
    assert len(world.keys()) == 35


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda d: d["object_counts"].update(raw=1000), id="object-count"),
        pytest.param(lambda d: d["guard_limits"].update(allow_mass_delete=True), id="allow-mass-delete"),
        pytest.param(lambda d: d["guard_limits"].update(max_delete=1000), id="max-delete"),
    ],
)
def test_editing_what_the_guards_are_derived_from_is_detected(world: World, edit: Any) -> None:
    assert world.pixel("plan", "-out", str(world.plan)).code == 1
    data = _forge_verdict(world)
    edit(data)
    world.save(data)
    refused = world.pixel("apply", str(world.plan))
    assert refused.code == 1, refused.out + refused.err
    assert "guard digest" in refused.err and "edited" in refused.err, refused.err
    assert len(world.keys()) == 35


def test_the_plan_as_pixel_wrote_it_applies_when_the_guards_allow_it(world: World) -> None:
    assert world.pixel("plan", "--allow-mass-delete", "-out", str(world.plan)).code == 0
    applied = world.pixel("apply", str(world.plan))
    assert applied.code == 0, applied.out + applied.err
    assert len(world.keys()) == 11


@pytest.mark.parametrize("bad", ["raw/../outside/keep.json", "raw/./f30.txt", "raw/sub/../../outside/keep.json"])
def test_a_saved_key_with_dot_segments_is_refused(world: World, bad: str) -> None:
    world.client.put_object(Bucket=world.bucket, Key="outside/keep.json", Body=b"not pixel's")
    etag = world.client.head_object(Bucket=world.bucket, Key="outside/keep.json")["ETag"].strip('"')
    assert world.pixel("plan", "--allow-mass-delete", "-out", str(world.plan)).code == 0
    data = world.saved()
    delete = next(a for a in data["actions"] if a["kind"] == "delete")
    old_id = delete["id"]
    delete["id"], delete["key"] = f"delete:s3:{bad}", bad
    delete["precondition"]["target_etag"] = etag
    data["edges"] = [[delete["id"] if i == old_id else i for i in edge] for edge in data["edges"]]
    world.save(data)
    before = world.keys()

    refused = world.pixel("apply", str(world.plan))
    assert refused.code == 1, refused.out + refused.err
    segment = ".." if ".." in bad else "."
    assert f"delete s3:{bad}" in refused.err and f'"{segment}" segment' in refused.err, refused.err
    assert world.keys() == before
