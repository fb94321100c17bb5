"""`verify [--download]`: every managed object's recorded md5 checked, against the bytes when downloading."""

from __future__ import annotations

from reconciler.apply.session import LockOptions
from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_ERROR, EXIT_OK
from reconciler.commands.apply import apply
from reconciler.commands.verify import verify
from tests.unit.commands.conftest import World


def applied(world: World) -> None:
    world.local("a.json", b'{"a": 1}')
    world.local("b.json", b'{"b": 2}')
    assert apply(world.specs, auto_approve=True, parallelism=2, lock=LockOptions(timeout=0)) == EXIT_OK
    world.output()


def test_what_apply_wrote_verifies(world: World) -> None:
    applied(world)
    assert verify(world.specs, download=True, parallelism=2) == EXIT_OK
    out, _ = world.output()
    assert out == "Verified 2 object(s) (downloaded 16 B): 0 mismatch(es), 0 without a recorded md5.\n"


def test_rotten_bytes_are_found_only_by_downloading_them(world: World) -> None:
    applied(world)
    world.lake.rot("datasets/raw/b.json", b'{"b": 3}')
    # The records still agree with each other: without --download nothing can tell.
    assert verify(world.specs, download=False, parallelism=2) == EXIT_OK
    world.output()
    assert verify(world.specs, download=True, parallelism=2) == EXIT_ERROR
    out, err = world.output()
    assert "✗ lake:datasets/raw/b.json: recorded md5" in out and "a.json" not in out
    assert "1 object(s) do not match their recorded md5" in err


def test_json_counts_every_verdict_and_lists_only_what_is_not_ok(world: World) -> None:
    applied(world)
    world.lake.rot("datasets/raw/b.json", b'{"b": 3}')
    world.lake.put("datasets/raw/foreign.json", b"{}")  # another tool's: no md5 recorded
    assert verify(world.specs, download=True, parallelism=2, output_format=OutputFormat.JSON) == EXIT_ERROR
    report = world.json()
    assert report["status"] == "mismatch" and report["verified"] == 3
    assert report["counts"]["ok"] == 1 and report["counts"]["mismatch"] == 1 and report["counts"]["unrecorded"] == 1
    assert [(o["key"], o["status"]) for o in report["objects"]] == [
        ("datasets/raw/b.json", "mismatch"),
        ("datasets/raw/foreign.json", "unrecorded"),
    ]


def test_objects_outside_the_mappings_are_not_verified(world: World) -> None:
    world.lake.put("elsewhere/x.json", b"{}")
    assert verify(world.specs, download=True, parallelism=2) == EXIT_OK
    assert world.output()[0].startswith("Verified 0 object(s)")
