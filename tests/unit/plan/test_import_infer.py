"""Tier and category inference of `pixel import` from key structure alone."""

from __future__ import annotations

import pytest
import yaml

from reconciler.commands.import_ import infer_tiers, parse_target, render_spec
from reconciler.errors import UserError


def test_top_level_directories_become_tiers_and_their_subdirectories_categories() -> None:
    keys = ["d/raw/cot/a.jsonl", "d/raw/b.jsonl", "d/processed/priority/x/y.jsonl", "d/processed/edge cases/z.json"]
    tiers = infer_tiers("s3", "d/", keys)
    assert tiers == {
        "processed": {"at": "s3:d/processed/", "ownership": "shared", "categories": ["priority"]},
        "raw": {"at": "s3:d/raw/", "ownership": "shared", "categories": ["cot"]},
    }


def test_files_at_the_root_make_one_tier_for_the_whole_prefix() -> None:
    tiers = infer_tiers("s3", "final_dataset/", ["final_dataset/manifest.json", "final_dataset/train/0.jsonl"])
    assert tiers == {"final_dataset": {"at": "s3:final_dataset/", "ownership": "shared", "categories": ["train"]}}


def test_the_written_spec_is_yaml_with_a_commented_mapping_per_tier() -> None:
    tiers = infer_tiers("s3", "", ["raw/a.jsonl"])
    text = render_spec("s3", "", tiers, 1, 10)
    assert yaml.safe_load(text) == {"tiers": tiers}
    assert "#   - name: raw\n#     from: LOCAL_STORE:raw\n#     to: s3:raw/" in text


@pytest.mark.parametrize("bad", ["noprefix", ":x/", "s3:a/../b/"])
def test_bad_targets_are_refused(bad: str) -> None:
    with pytest.raises(UserError):
        parse_target(bad)


def test_prefix_gets_its_slash() -> None:
    assert parse_target("s3:datasets/gdrive") == ("s3", "datasets/gdrive/")
