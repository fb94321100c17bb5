"""`pixel explain KEY`: which mapping, which rule, both observed sides, and what the plan does."""

from __future__ import annotations

from reconciler.commands.explain import explain_key
from reconciler.model import Entry, MappingObservation, Observed
from tests.unit.plan.fixed_plan import MD5_A, MD5_B, fixed_desired, fixed_plan


def observed() -> Observed:
    return Observed(
        mappings={
            "raw": MappingObservation(
                local={"notes.json": Entry("notes.json", 2048, MD5_A)},
                remote={"notes.json": Entry("notes.json", 2048, MD5_B), "same.json": Entry("same.json", 3, MD5_A)},
            ),
            "actors": MappingObservation(local={}, remote={}),
        }
    )


def test_explains_an_update_with_both_hashes_and_the_action() -> None:
    text = "\n".join(explain_key(fixed_desired(), observed(), fixed_plan(), "datasets/gdrive/raw/notes.json"))
    assert "mapping 'raw'" in text and "authority local, prune true" in text
    assert f"local  staging:raw/notes.json: 2048 bytes, md5 {MD5_A}" in text
    assert f"remote pixel-data:datasets/gdrive/raw/notes.json: 2048 bytes, md5 {MD5_B}" in text
    assert "~ datasets/gdrive/raw/notes.json  (upload, 2.0 KiB: content differs" in text


def test_a_local_path_or_store_prefixed_key_finds_the_same_mapping() -> None:
    for key in ("staging:raw/notes.json", "pixel-data:datasets/gdrive/raw/notes.json"):
        text = "\n".join(explain_key(fixed_desired(), observed(), fixed_plan(), key))
        assert "mapping 'raw'" in text and "content differs" in text


def test_a_key_in_sync_says_nothing_to_do_and_an_unknown_key_says_it_is_left_alone() -> None:
    same = "\n".join(explain_key(fixed_desired(), observed(), fixed_plan(), "datasets/gdrive/raw/same.json"))
    assert "nothing to do" in same
    stray = "\n".join(explain_key(fixed_desired(), observed(), fixed_plan(), "elsewhere/x"))
    assert "not covered by any mapping, tier or dataset" in stray


def test_moves_show_what_they_wait_for_and_findings_are_listed() -> None:
    plan = fixed_plan()
    moved = "\n".join(explain_key(fixed_desired(), observed(), plan, "datasets/acquired/mix.jsonl"))
    assert "=> datasets/gdrive/processed/priority/mix.jsonl" in moved
    assert "delete:pixel-data:datasets/acquired/mix.jsonl waits for: move:" in moved
    conflict = "\n".join(explain_key(fixed_desired(), observed(), plan, "pixel-data:actors/0042/0042_3.jpg"))
    assert "authority none" in conflict and "! conflict" in conflict


def test_explain_states_the_pair_as_the_rules_classify_it() -> None:
    update = "\n".join(explain_key(fixed_desired(), observed(), fixed_plan(), "datasets/gdrive/raw/notes.json"))
    assert "state different (manifest status out_of_sync): under authority local the rule is push" in update
    same = "\n".join(explain_key(fixed_desired(), observed(), fixed_plan(), "datasets/gdrive/raw/same.json"))
    assert "state s3_only (manifest status s3_only)" in same and "both sides agree" not in same


def test_a_report_only_conflict_is_not_called_agreeing() -> None:
    seen = Observed(
        mappings={
            "raw": MappingObservation(local={}, remote={}),
            "actors": MappingObservation(
                local={"0042/0042_3.jpg": Entry("0042/0042_3.jpg", 5, MD5_A)},
                remote={"0042/0042_3.jpg": Entry("0042/0042_3.jpg", 5, None)},
            ),
        }
    )
    text = "\n".join(explain_key(fixed_desired(), seen, fixed_plan(), "pixel-data:actors/0042/0042_3.jpg"))
    assert "state unknown (manifest status out_of_sync): under authority none the rule is conflict" in text
    assert "both sides agree" not in text
