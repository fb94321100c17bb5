"""Random training-data worlds for the streaming planner's law: tiers, datasets (copied, moved, uploaded, one
whose source this same plan uploads), a registry with record indexes, an inventory, actors (listed and
discovered, a legacy response.json) and a final dataset (unpublished, current, stale, with leftover and
foreign shards), on in-memory stores observed by the real observer.

Built on `tests/unit/manifests/world.py`'s world: its specs plus a push mapping under the raw tier, a
dataset sourced from it, and a final dataset over two datasets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from reconciler.manifests.final import FORMAT, VERSION, build_id, render
from reconciler.manifests.record_index import index_key
from reconciler.model import Desired, Observed
from reconciler.plan.guards import GuardLimits
from tests.unit.manifests.world import ACTOR, ACTOR_DIR, S3_DIR, World, build, jpeg, md5

EXTRA = """\
mappings:
  - name: incoming
    from: ws:incoming
    to: lake:datasets/gdrive/raw/incoming/
    authority: local
    prune: true
  - name: mirror
    from: ws:mirror
    to: lake:datasets/gdrive/processed/
    authority: local
final_dataset:
  sources: [reasoning, pushed]
  splits: {train: 0.9, validation: 0.1}
  split_key: q
  shard: {records: 100}
  to: lake:final_dataset/
  compiled: final_dataset/compiled/final.jsonl
  manifest: {key: final_dataset/manifest.json, local: "ws:kept/manifest.json"}
  workdir: ws:work
"""
PUSHED = (
    '    - {name: pushed, tier: processed, category: priority, format: jsonl,\n'
    '       source: "lake:datasets/gdrive/raw/incoming/p.jsonl"}\n'
)
PROCESSED = "datasets/gdrive/processed/"
CANONICAL = {
    "reasoning": f"{PROCESSED}cot_reasoning/reasoning.jsonl",
    "crisis": f"{PROCESSED}edge_cases/crisis.json",
    "notes": f"{PROCESSED}priority/notes.jsonl",
    "ghost": f"{PROCESSED}priority/ghost.json",
    "pushed": f"{PROCESSED}priority/pushed.jsonl",
}
RAW_KEYS = ("datasets/gdrive/raw/cot/reasoning.jsonl", "datasets/gdrive/raw/edge/crisis.json")
REGISTRY = "ai/data/dataset_registry.json"
INVENTORY = "ai/training_ready/data/s3_manifest.json"
MANIFEST = "final_dataset/manifest.json"
KEPT = "kept/manifest.json"
BYTES = (b'{"q": 1}\n{"q": 2}\n', b'{"q": 3}\n', b'{"crisis": true}', b'{"n": 1}\n')


@dataclass(frozen=True)
class TrainingWorld:
    desired: Desired
    observed: Observed
    limits: GuardLimits


def _published(desired: Desired, sources: dict[str, str], shards: list[tuple[str, bytes]]) -> bytes:
    final = desired.final
    assert final is not None
    recipe = json.loads(final.recipe)
    recipe["digest"] = final.recipe_digest
    listed = [
        {"split": "train", "id": key.rsplit("/", 1)[-1][:-6], "key": key, "s3_url": "", "md5": md5(data),
         "size": len(data), "records": 1}
        for key, data in shards
    ]  # fmt: skip
    document = {
        "format": FORMAT, "version": VERSION, "created": "2026-01-01T00:00:00Z",
        "build": build_id(final, sources) if set(sources) == {s.name for s in final.sources} else "other",
        "recipe": recipe,
        "sources": [{"name": n, "key": CANONICAL[n], "md5": m, "size": 1} for n, m in sorted(sources.items())],
        "splits": {"train": {"shards": len(listed), "records": len(listed), "bytes": 1}}, "shards": listed,
        "compiled": None, "counts": {"read": 1, "duplicates": 0, "written": {"train": len(listed)}},
    }  # fmt: skip
    return render(document)


@st.composite
def training_worlds(draw: st.DrawFn, tmp: Path) -> TrainingWorld:
    """One random world, its specs written under `tmp` (a fresh directory per example)."""
    world: World = build(tmp, EXTRA)
    spec = world.spec_dir / "world.yaml"
    text = spec.read_text().replace("    - {name: ghost", PUSHED + "    - {name: ghost")
    if draw(st.booleans()):
        text = text.replace("  discover:", "  legacy_response_json: delete\n  discover:")
    spec.write_text(text)
    stores = {"ws": world.ws, "lake": world.lake, "assets": world.assets}
    # Some of the starting objects gone: a dataset without its source, an actor without an image.
    for store in stores.values():
        for key in sorted(store):
            if draw(st.integers(0, 4)) == 0:
                store.delete(key)
    # The push mapping's tree, and the raw objects it holds already (an upload, an update, a prune).
    for rel in draw(st.lists(st.sampled_from(["p.jsonl", "q.jsonl", "sub/r.jsonl"]), unique=True, max_size=3)):
        world.ws.put(f"incoming/{rel}", BYTES[draw(st.integers(0, 1))])
    for rel in draw(st.lists(st.sampled_from(["p.jsonl", "old.jsonl", "sub/r.jsonl"]), unique=True, max_size=3)):
        world.lake.put(f"datasets/gdrive/raw/incoming/{rel}", BYTES[draw(st.integers(0, 1))])
    # Canonical objects: the source's bytes, other bytes, or bytes whose md5 the listing does not say.
    for name, key in CANONICAL.items():
        how = draw(st.sampled_from(["none", "same", "other", "foreign"]))
        if how == "none":
            continue
        source = {"reasoning": RAW_KEYS[0], "crisis": RAW_KEYS[1]}.get(name)
        data = world.lake.get(source) if source is not None and source in world.lake else BYTES[3]
        if how == "other":
            data = b"other " + data
        world.lake.put(key, data, foreign=how == "foreign")
        if draw(st.booleans()):  # its record index already published
            world.lake.put(index_key(md5(data), "jsonl" if key.endswith("jsonl") else "json"), b"{}")
    if draw(st.booleans()):  # under the processed tier, no dataset's: the mirror mapping reports it unmanaged
        world.lake.put(f"{PROCESSED}priority/extra.json", BYTES[2])
    registry = draw(st.sampled_from([None, b"not json", b"{}", b'{"datasets": {"reasoning": {"x": 1}}}']))
    if registry is not None:
        world.ws.put(REGISTRY, registry)
    if draw(st.booleans()):
        world.ws.put(INVENTORY, b"{}")
    # Actor files: an orphan, an image edited on one side, a stray legacy file.
    if draw(st.booleans()):
        world.ws.put(f"{ACTOR_DIR}/notes.txt", b"x")
    if draw(st.booleans()):
        world.assets.put(f"{S3_DIR}/{ACTOR}_1.jpg", jpeg(draw(st.integers(1, 3))))
    if draw(st.booleans()):
        world.ws.put("data/actors/0007_asian_25_female/training_data/response.json", b"{}")
    _final(draw, world, world.desired())
    desired, observed = world.observe()
    limits = GuardLimits(
        max_delete=draw(st.sampled_from([0, 100])),
        allow_mass_delete=draw(st.booleans()),
        strict=draw(st.booleans()),
        mass_min_count=2,
    )
    return TrainingWorld(desired, observed, limits)


def _final(draw: st.DrawFn, world: World, desired: Desired) -> None:
    """The final dataset: unpublished, or published from these sources or others, its shards whole or not, a
    leftover of an interrupted build, a foreign object under its prefix, the kept local copy or not."""
    shards = [
        (f"final_dataset/train/shard-0000{i}-{md5(data)[:8]}.jsonl", data)
        for i, data in enumerate(draw(st.lists(st.sampled_from(BYTES[:2]), min_size=1, max_size=2)))
    ]
    if draw(st.booleans()):
        sources = {
            name: md5(world.lake.get(CANONICAL[name])) if CANONICAL[name] in world.lake else "0" * 32
            for name in draw(st.sampled_from([("reasoning", "pushed"), ("reasoning",)]))
        }
        published = _published(desired, sources, shards)
        world.lake.put(MANIFEST, published)
        for key, data in shards:
            if draw(st.integers(0, 3)) > 0:
                world.lake.put(key, data if draw(st.integers(0, 3)) > 0 else b"torn")
        if draw(st.booleans()):
            world.ws.put(KEPT, published)
    if draw(st.booleans()):
        world.lake.put("final_dataset/train/shard-00009-abcdef01.jsonl", b"leftover")
    if draw(st.booleans()):
        world.lake.put("final_dataset/notes.txt", b"someone else's")
