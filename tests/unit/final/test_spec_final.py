"""The final_dataset section: built from registry names and stages; mistakes located like every other section."""

from __future__ import annotations

from pathlib import Path

from reconciler.units import parse_size
from tests.unit.final.world import SPEC, desired
from tests.unit.spec.spec_testing import SpecDir


def test_sources_resolve_names_and_stages_sorted(tmp_path: Path) -> None:
    final = desired(tmp_path).final
    assert final is not None
    assert [s.name for s in final.sources] == ["alpha", "beta"]
    assert final.splits == (("train", 0.9), ("validation", 0.05), ("test", 0.05))
    assert (final.prefix, final.shard_records, final.shard_bytes, final.dedupe) == ("final_dataset/", 100, 2**20, True)
    assert len(final.recipe_digest) == 64


def test_layout_and_workdir_do_not_change_the_recipe_but_splits_do(tmp_path: Path) -> None:
    base = desired(tmp_path).final
    moved = desired(tmp_path, SPEC.replace("disk:work", "disk:elsewhere")).final
    resplit = desired(tmp_path, SPEC.replace("train: 0.9, validation: 0.05", "train: 0.85, validation: 0.1")).final
    assert base and moved and resplit
    assert base.recipe_digest == moved.recipe_digest != resplit.recipe_digest


def test_mistakes_are_located(specs: SpecDir) -> None:
    bad = (SPEC.replace("sources: [alpha, {stages: [two]}]", "sources: [alpha, nosuch, {stages: [three]}]")
           .replace("train: 0.9,", "train: 0.8,")
           .replace("compiled: final_dataset/compiled/", "compiled: elsewhere/"))
    specs.write("final.yaml", bad)
    assert specs.errors() == [
        'specs/final.yaml:11: final_dataset.sources[1]: expected a dataset of the registry, got "nosuch" '
        "(datasets: alpha, beta)",
        "specs/final.yaml:11: final_dataset.sources[2].stages: no dataset of the registry is in stage(s) three",
        "specs/final.yaml:12: final_dataset.splits: expected ratios summing to 1, got 0.9",
        'specs/final.yaml:17: final_dataset.compiled: expected the key of one object under "final_dataset/", '
        'got "elsewhere/final_training_dataset.jsonl"',
    ]


def test_a_mapping_over_the_final_prefix_is_refused(specs: SpecDir) -> None:
    specs.write("final.yaml", SPEC + "mappings:\n  - {name: m, from: 'disk:x', to: 'lake:final_dataset/train/'}\n")
    [message] = specs.errors()
    assert message.startswith('specs/final.yaml:16: final_dataset.to: lake:final_dataset/ overlaps mapping "m"')


def test_schema_errors_name_the_field(specs: SpecDir) -> None:
    specs.write("final.yaml", SPEC.replace("records: 100", "records: 0").replace("dedupe: true", "dedupe: yes"))
    errors = specs.errors()
    assert any("final_dataset.shard.records" in e for e in errors), errors


def test_min_size_and_keep_local_on_a_mapping(specs: SpecDir) -> None:
    specs.write("final.yaml", SPEC + (
        "mappings:\n  - {name: m, from: 'disk:x', to: 'lake:up/', release_local: true,\n"
        "     min_size: {size: 1 MB, except: ['**/*.jsonl']}, keep_local: ['manifest.json']}\n"))
    [mapping] = specs.load().mappings
    assert mapping.min_size == 10**6
    assert (mapping.min_size_except, mapping.keep_local) == (("**/*.jsonl",), ("manifest.json",))


def test_parse_size() -> None:
    assert [parse_size(v) for v in (7, "1 MB", "64MiB", "1.5 KiB", "10")] == [7, 10**6, 64 * 2**20, 1536, 10]
