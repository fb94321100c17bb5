"""Spec sections tiers / inventory / datasets / actors: what they build and how mistakes are reported."""

from __future__ import annotations

from reconciler.actor_layout import discover
from reconciler.model import Authority, ObjectRef, Organise, Ownership
from tests.unit.spec.spec_testing import SpecDir

STORES = """\
stores:
  lake: {type: s3, bucket: pixel-data}
  assets: {type: s3, bucket: story-boards-assets}
  ws: {type: local, root: ws}
tiers:
  raw: {at: "lake:datasets/gdrive/raw", ownership: shared}
  scratch: {at: "lake:scratch/"}
  processed:
    at: "lake:datasets/gdrive/processed/"
    categories: [cot_reasoning, priority]
    protect: true
"""


def test_tiers_datasets_and_actors_are_built(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    specs.write(
        "world.yaml",
        """\
        inventory: {path: "ws:ai/s3_manifest.json"}
        datasets:
          registry: ws:ai/data/dataset_registry.json
          items:
            - {name: r, tier: processed, category: priority, format: jsonl, source: "lake:scratch/r.jsonl",
               organise: move, stages: [a, b]}
            - {name: l.json, tier: processed, category: cot_reasoning, format: json, source: "ws:l.json"}
        actors:
          local: ws:data/actors/
          s3: assets:system_actors/training_data
          manifests: ws:data/actor_manifests
          discover: '^(?P<id>\\d{4})_.+$'
          list: [{id: "0042", name: 0042_a, count: 3, authority: none}]
        """,
    )
    desired = specs.load()
    assert [(t.name, t.prefix, t.ownership) for t in desired.tiers] == [
        ("raw", "datasets/gdrive/raw/", Ownership.SHARED),
        ("scratch", "scratch/", Ownership.EXCLUSIVE),
        ("processed", "datasets/gdrive/processed/", Ownership.EXCLUSIVE),
    ]
    r, local = desired.datasets
    assert (r.key, r.source, r.organise, r.stages) == (
        "datasets/gdrive/processed/priority/r.jsonl",
        ObjectRef("lake", "scratch/r.jsonl"),
        Organise.MOVE,
        ("a", "b"),
    )
    assert local.key == "datasets/gdrive/processed/cot_reasoning/l.json"  # the name already had its extension
    assert desired.registry == ObjectRef("ws", "ai/data/dataset_registry.json")
    assert desired.inventory == ObjectRef("ws", "ai/s3_manifest.json")
    [actor] = desired.actors
    assert actor.manifest == ObjectRef("ws", "data/actor_manifests/0042_manifest.json")
    [mapping] = [m for m in desired.mappings if m.name == actor.mapping]
    assert (mapping.local_path, mapping.s3_prefix, mapping.include, mapping.authority) == (
        "data/actors/0042_a/training_data",
        "system_actors/training_data/0042_a/",
        ("/0042_a_*.jpg",),
        Authority.NONE,
    )


def test_world_mistakes_are_located(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    specs.write(
        "world.yaml",
        """\
        mappings:
          - {name: p, from: "ws:p", to: "lake:datasets/gdrive/processed/priority/", prune: true}
        datasets:
          items:
            - {name: a, tier: processed, category: nope, format: json}
            - {name: b, tier: missing, category: priority, format: json}
            - {name: c, tier: processed, category: priority, format: json, source: "lake:datasets/gdrive/raw/c.json",
               organise: move}
            - {name: d, tier: processed, category: priority, format: json, source: "assets:x/d.json"}
            - {name: e, tier: processed, category: cot_reasoning, format: json, organise: move}
        actors:
          local: lake:data/actors
          s3: assets:system_actors/training_data/
          manifests: ws:data/actor_manifests
          discover: '^\\d{4}_.+$'
        """,
    )
    assert specs.errors() == [
        'specs/world.yaml:5: datasets.items[0].category: expected one of tier "processed"\'s categories '
        '(cot_reasoning, priority), got "nope"',
        'specs/world.yaml:6: datasets.items[1].tier: expected a defined tier, got "missing" '
        "(tiers: processed, raw, scratch)",
        'specs/world.yaml:8: datasets.items[2].organise: organise: move would delete in tier "raw", which is '
        "shared: use organise: copy",
        'specs/world.yaml:9: datasets.items[3].source: an S3 source must be in the dataset\'s bucket (store "lake") '
        "so that organising it is a server-side copy",
        "specs/world.yaml:10: datasets.items[4].organise: organise: move needs a source to move from",
        'specs/world.yaml:12: actors.local: expected "store:path" naming a local store, got "lake:data/actors" '
        '(store "lake" is an s3 store)',
        "specs/world.yaml:15: actors.discover: expected a regular expression with a group named id, e.g. "
        '"^(?P<id>\\d{4})_.+$"',
    ]


def test_dataset_under_a_pruning_mapping_is_refused(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    specs.write(
        "world.yaml",
        """\
        mappings:
          - {name: p, from: "ws:p", to: "lake:datasets/gdrive/processed/priority/", prune: true}
        datasets:
          items:
            - {name: a, tier: processed, category: priority, format: json}
        """,
    )
    [message] = specs.errors()
    assert message.startswith("specs/world.yaml:5: datasets.items[0]: dataset path lake:datasets/gdrive/processed/")
    assert 'under mapping "p", which prunes' in message


def test_discovery_takes_the_id_group_and_skips_other_names() -> None:
    from reconciler.model import ActorLayout

    layout = ActorLayout("ws", "data/actors", "assets", "p/", "ws", "m", discover=r"^(?P<id>\d{4})_.+$")
    assert discover(layout, ["0042_b", "0007_a", "notes", "12_x"]) == [("0007", "0007_a"), ("0042", "0042_b")]


def test_pruning_inside_a_shared_tier_is_refused(specs: SpecDir) -> None:
    specs.write("stores.yaml", STORES)
    specs.write(
        "world.yaml",
        """\
        mappings:
          - {name: mirror, from: "ws:raw", to: "lake:datasets/gdrive/raw/", prune: true}
        actors:
          local: ws:data/actors
          s3: lake:datasets/gdrive/raw/actors/
          manifests: ws:data/actor_manifests
          prune: true
        """,
    )
    assert specs.errors() == [
        'specs/stores.yaml:6: tiers.raw.ownership: tier is shared, so pixel never deletes there, but mapping "mirror" '
        "prunes lake:datasets/gdrive/raw/",
        "specs/world.yaml:7: actors.prune: actors prune lake:datasets/gdrive/raw/actors/, which lies in tier "
        '"raw", a shared tier where pixel never deletes',
    ]


def test_a_tier_defined_in_two_files_is_reported_where_it_repeats(specs: SpecDir) -> None:
    specs.write("a.yaml", STORES)
    specs.write("b.yaml", 'tiers:\n  scratch: {at: "lake:other/"}\n')

    assert specs.errors() == ['specs/b.yaml:2: tiers.scratch: tier "scratch" is already defined at specs/a.yaml:7']
