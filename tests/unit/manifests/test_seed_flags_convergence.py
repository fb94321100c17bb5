"""Property: with the seed-file flags and whatever strays and hand edits, apply then re-plan leaves nothing to do.

adopt_orphans, legacy_response_json and a registry people added keys to all change what apply writes; none of
them may leave a difference the next plan acts on (a clock that moved included).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.manifests.world import World, build, jpeg

NAME = "0101_test_20_male"
STRAYS = {
    "notes": (f"data/actors/{NAME}/notes.txt", b"x"),
    "beside": (f"data/actors/{NAME}/{NAME}_9.jpg", jpeg(9)),  # correctly named, outside training_data/
    "shadow": (f"data/actors/{NAME}/old/{NAME}_0.jpg", jpeg(1)),  # named like an image training_data/ has
    "legacy": (f"data/actors/{NAME}/training_data/response.json", b'{"legacy": true}'),
}
REGISTRY = "ai/data/dataset_registry.json"


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    strays=st.sets(st.sampled_from(sorted(STRAYS))),
    adopt=st.booleans(),
    legacy=st.sampled_from(["report", "delete"]),
    notes=st.booleans(),
)
def test_seed_flags_converge_and_then_stay_byte_identical(
    strays: set[str], adopt: bool, legacy: str, notes: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world: World = build(Path(tmp))
        spec = world.spec_dir / "world.yaml"
        flags = f"  adopt_orphans: {str(adopt).lower()}\n  legacy_response_json: {legacy}\n"
        spec.write_text(spec.read_text().replace("  discover:", flags + "  discover:", 1))
        world.ws.put(f"data/actors/{NAME}/training_data/{NAME}_0.jpg", jpeg(0))
        for name in strays:
            key, data = STRAYS[name]
            world.ws.put(key, data)
        _, first, _ = world.apply()
        assert first.ok
        if notes:
            document = json.loads(world.ws.get(REGISTRY))
            world.ws.put(REGISTRY, (json.dumps({"notes": "by hand", **document}, indent=2) + "\n").encode())
        world.clock_ns += 10**12
        plan, second, _ = world.apply()
        assert second.ok
        settled = {key: world.ws.get(key) for key in world.ws}
        world.clock_ns += 10**12
        plan, _result, writer = world.apply()
        assert [a.id for a in plan.actions] == []
        assert writer.written == []
        assert {key: world.ws.get(key) for key in world.ws} == settled
        legacy_key = STRAYS["legacy"][0]
        assert (legacy_key in settled) == ("legacy" in strays and legacy == "report")
        manifest = json.loads(settled["data/actor_manifests/0101_manifest.json"])
        listed = {e["local_path"] for e in manifest["training_data"]}
        assert (STRAYS["beside"][0] in listed) == ("beside" in strays and adopt)
        assert STRAYS["shadow"][0] not in listed  # training_data/ holds that name: never two files behind one
