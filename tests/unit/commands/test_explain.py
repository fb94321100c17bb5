"""`explain KEY`: which mapping covers a key, both sides of it, the state, and the plan's actions on it."""

from __future__ import annotations

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_OK
from reconciler.commands.explain import explain
from tests.unit.commands.conftest import World, md5


def test_a_key_only_in_s3_under_push_and_prune_is_explained_as_a_delete(world: World) -> None:
    world.lake.put("datasets/raw/gone.json", b"{}")
    world.local("kept.json", b"[]")
    assert explain(world.specs, "datasets/raw/gone.json") == EXIT_OK
    out, _ = world.output()
    assert out.startswith("datasets/raw/gone.json:\n  mapping 'raw'")
    assert "local  disk:raw/gone.json: absent" in out
    assert f"remote lake:datasets/raw/gone.json: 2 bytes, md5 {md5(b'{}')}" in out
    assert "state s3_only" in out
    assert "- datasets/raw/gone.json  (delete" in out


def test_json_names_the_store_both_sides_and_the_action(world: World) -> None:
    world.local("new.json", b"{}")
    assert explain(world.specs, "lake:datasets/raw/new.json", output_format=OutputFormat.JSON) == EXIT_OK
    found = world.json()
    assert (found["store"], found["store_key"], found["covered"]) == ("lake", "datasets/raw/new.json", True)
    [mapping] = found["mappings"]
    assert mapping["name"] == "raw" and mapping["relative_key"] == "new.json" and mapping["rule"] == "push"
    assert mapping["local_side"]["present"] is True and mapping["remote_side"]["present"] is False
    assert [(a["kind"], a["key"]) for a in found["actions"]] == [("upload", "datasets/raw/new.json")]


def test_a_key_no_mapping_covers_says_so(world: World) -> None:
    world.lake.put("elsewhere/x.json", b"{}")
    assert explain(world.specs, "lake:elsewhere/x.json", output_format=OutputFormat.JSON) == EXIT_OK
    found = world.json()
    assert found["covered"] is False and found["mappings"] == [] and found["actions"] == []


def test_a_file_the_globs_leave_out_is_not_managed(world: World) -> None:
    world.local("notes.txt", b"text")
    assert explain(world.specs, "lake:datasets/raw/notes.txt", output_format=OutputFormat.JSON) == EXIT_OK
    found = world.json()
    assert [m["managed"] for m in found["mappings"]] == [False] and found["actions"] == []
