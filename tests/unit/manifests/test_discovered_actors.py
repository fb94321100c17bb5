"""Discovered actors are observed state: plan(specs, observed) derives their actors and mappings itself."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from reconciler.actor_layout import with_discovered
from reconciler.model import ActionKind, Authority, DiscoveredActor
from reconciler.observe import StreamingHasher, observe
from reconciler.observe.world import discover_actors
from reconciler.plan import plan
from reconciler.spec import load_desired
from reconciler.workflow import observe_and_plan
from reconciler.workspace import Workspace
from tests.unit.manifests.world import ACTOR, build

NEW = "0007_asian_25_female"


def test_planning_the_specs_with_the_observed_discovery_equals_planning_the_enlarged_desired(tmp_path: Path) -> None:
    world = build(tmp_path)
    declared = load_desired(world.spec_dir, {})
    discovered = discover_actors(declared, world.stores)
    assert DiscoveredActor("0007", NEW) in discovered
    enlarged = with_discovered(declared, discovered)
    assert NEW not in {a.actor_name for a in declared.actors}
    observed = observe(enlarged, world.stores, StreamingHasher(), discovered=discovered)
    assert observed.discovered == discovered

    from_declared = plan(declared, observed)
    assert from_declared == plan(enlarged, dataclasses.replace(observed, discovered=()))
    # The discovered actor's two images are uploaded and its manifest written, as before.
    uploads = {a.target.key for a in from_declared.actions if a.kind is ActionKind.UPLOAD and NEW in a.target.key}
    assert uploads == {f"system_actors/training_data/{NEW}/{NEW}_{i}.jpg" for i in (0, 1)}
    manifests = {a.target.key for a in from_declared.actions if a.kind is ActionKind.WRITE_MANIFEST}
    assert "data/actor_manifests/0007_manifest.json" in manifests


def test_with_discovered_is_idempotent_and_a_listed_actor_keeps_its_settings(tmp_path: Path) -> None:
    declared = load_desired(build(tmp_path).spec_dir, {})
    found = (DiscoveredActor("0042", ACTOR), DiscoveredActor("0007", NEW))
    once = with_discovered(declared, found)
    assert with_discovered(once, found) == once
    assert [a.actor_name for a in once.actors] == sorted([ACTOR, NEW])
    listed = next(a for a in once.actors if a.actor_id == "0042")
    assert listed == next(a for a in declared.actors if a.actor_id == "0042")
    by_name = {m.name: m for m in once.mappings}
    assert by_name[listed.mapping].authority is Authority.NONE  # the listing's, not the layout's `local`
    assert len(once.mappings) == len(declared.mappings) + 1
    assert with_discovered(declared, ()) is declared


def test_a_targeted_plan_leaves_out_the_discovered_actors_it_did_not_target(tmp_path: Path) -> None:
    world = build(tmp_path)
    declared = load_desired(world.spec_dir, {})
    ws = Workspace(declared, dict(world.stores), discovered=discover_actors(declared, world.stores))
    assert NEW in {a.actor_name for a in ws.desired.actors}  # the derived view holds it
    _, targeted = observe_and_plan(ws, StreamingHasher(), targets=("actors/0042",))
    assert {a.mapping for a in targeted.actions} <= {f"actors/{ACTOR}"}
    assert targeted.actions
    _, untargeted = observe_and_plan(ws, StreamingHasher(), targets=("actors/0007",))
    assert {a.mapping for a in untargeted.actions} == {f"actors/{NEW}"}
