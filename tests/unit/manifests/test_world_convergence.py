"""Property: whatever state an actor's images are in, apply then re-plan leaves nothing to do."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.unit.manifests.world import World, build, jpeg

NAME = "0101_test_20_male"
SIDE = st.dictionaries(st.integers(0, 5), st.integers(0, 2), max_size=6)  # index -> content variant


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(local=SIDE, remote=SIDE, authority=st.sampled_from(["local", "s3", "none"]), stray=st.booleans())
def test_any_actor_state_converges_and_then_stays_byte_identical(
    local: dict[int, int], remote: dict[int, int], authority: str, stray: bool
) -> None:
    assume(local or remote or stray)  # an actor with nothing anywhere is not discovered
    with tempfile.TemporaryDirectory() as tmp:
        world: World = build(Path(tmp))
        for store in (world.ws, world.assets):
            for key in store:
                store.delete(key)  # only this (discovered) actor and the listed, now empty, 0042
        spec = world.spec_dir / "world.yaml"
        spec.write_text(spec.read_text().replace("authority: local\n  discover", f"authority: {authority}\n  discover"))
        base_local = f"data/actors/{NAME}/training_data/{NAME}"
        base_remote = f"system_actors/training_data/{NAME}/{NAME}"
        for index, variant in local.items():
            world.ws.put(f"{base_local}_{index}.jpg", jpeg(index * 10 + variant))
        for index, variant in remote.items():
            world.assets.put(f"{base_remote}_{index}.jpg", jpeg(index * 10 + variant))
        if stray:
            world.ws.put(f"data/actors/{NAME}/notes.txt", b"x")
        _, first, _ = world.apply()
        assert first.ok
        manifest = world.ws.get("data/actor_manifests/0101_manifest.json")
        world.clock_ns += 10**12
        plan, _result, writer = world.apply()
        assert [a.id for a in plan.actions] == []
        assert writer.written == []
        assert world.ws.get("data/actor_manifests/0101_manifest.json") == manifest
