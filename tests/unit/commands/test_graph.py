"""`graph`: the plan's actions and their order as dot or Mermaid, from a saved plan or planned now."""

from __future__ import annotations

from pathlib import Path

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_OK
from reconciler.commands.graph import graph
from reconciler.commands.plan import plan
from tests.unit.commands.conftest import World


def moved(world: World) -> None:
    """One object renamed locally: a server-side copy, then the old key's delete after it."""
    world.lake.put("datasets/raw/old.json", b"{}")
    world.local("new.json", b"{}")


def test_mermaid_draws_the_delete_after_the_copy_it_waits_for(world: World) -> None:
    moved(world)
    assert graph(world.specs, None, output_format=OutputFormat.MERMAID) == EXIT_OK
    out, _ = world.output()
    lines = out.splitlines()
    assert lines[0] == "flowchart LR" and '  subgraph c0["raw"]' in lines
    copy = next(line.split("[")[0].strip() for line in lines if "move datasets/raw/old.json" in line)
    delete = next(line.split("[")[0].strip() for line in lines if "delete datasets/raw/old.json" in line)
    assert f"  {copy} --> {delete}" in lines


def test_a_saved_plan_is_drawn_without_opening_a_store(world: World, tmp_path: Path) -> None:
    moved(world)
    saved = tmp_path / "p.json"
    assert plan(world.specs, detailed_exitcode=False, parallelism=2, out=saved) == EXIT_OK
    world.output()
    world.lake.delete("datasets/raw/old.json")  # the stores changed since: the drawing is the file's
    assert graph(world.specs, saved, output_format=OutputFormat.DOT) == EXIT_OK
    out, _ = world.output()
    assert out.startswith("digraph") and "old.json" in out and "->" in out
