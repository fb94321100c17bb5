"""`status`: each mapping's objects counted by sync state, read only, as a table, JSON or a fenced table."""

from __future__ import annotations

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_OK
from reconciler.commands.status import status
from tests.unit.commands.conftest import World


def three_states(world: World) -> None:
    world.local("both.json", b"{}")
    world.lake.put("datasets/raw/both.json", b"{}")
    world.local("mine.json", b"[1]")
    world.lake.put("datasets/raw/theirs.json", b'"abc"')
    world.local("differs.json", b"[2]")
    world.lake.put("datasets/raw/differs.json", b"[22]")


def test_json_counts_each_state_with_its_bytes_and_writes_nothing(world: World) -> None:
    three_states(world)
    before = {key: world.lake.get(key) for key in world.lake}
    assert status(world.specs, output_format=OutputFormat.JSON) == EXIT_OK
    raw = world.json()["mappings"]["raw"]
    assert raw["synced"] == {"count": 1, "bytes": 2}
    assert raw["local_only"] == {"count": 1, "bytes": 3}
    assert raw["s3_only"] == {"count": 1, "bytes": 5}
    assert raw["out_of_sync"] == {"count": 1, "bytes": 3}
    assert {key: world.lake.get(key) for key in world.lake} == before


def test_text_is_an_aligned_table_and_a_total(world: World) -> None:
    three_states(world)
    assert status(world.specs) == EXIT_OK
    out, _ = world.output()
    header, row = out.splitlines()[:2]
    assert header.split() == ["MAPPING", "synced", "local_only", "s3_only", "out_of_sync"]
    assert row.split() == ["raw", "1", "(2", "B)", "1", "(3", "B)", "1", "(5", "B)", "1", "(3", "B)"]
    assert header.index("local_only") == row.index("1 (3 B)")  # columns line up
    assert "Total: 1 synced, 1 local_only, 1 s3_only, 1 out_of_sync; 0 orphan(s), 0 missing." in out


def test_markdown_fences_the_table_so_its_columns_survive(world: World) -> None:
    three_states(world)
    assert status(world.specs, output_format=OutputFormat.MARKDOWN) == EXIT_OK
    out, _ = world.output()
    assert out.startswith("### pixel status\n\n```\nMAPPING") and out.endswith("```\n")
