"""A dataset's canonical object equals its source by `rules.classify`, as every pair of pixel does.

Same size with an md5 unknown (a multipart ETag) is not "equal": only reading the object can tell, so the plan
rehashes it, and the plan after that copies when the bytes differ.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.model import ActionKind
from reconciler.plan import plan as make_plan
from reconciler.plan.saved_checks import problems
from tests.unit.manifests.world import build

SOURCE = "datasets/gdrive/raw/cot/reasoning.jsonl"
TARGET = "datasets/gdrive/processed/cot_reasoning/reasoning.jsonl"
GOOD = b'{"q": 1}\n{"q": 2}\n'
STALE = b'{"q": 9}\n{"q": 8}\n'  # same length, other bytes


def test_an_unknown_md5_of_the_same_size_plans_a_rehash_and_then_the_copy(tmp_path: Path) -> None:
    world = build(tmp_path)
    world.lake.put(TARGET, STALE, foreign=True)  # written by another tool: a multipart ETag, no md5
    assert len(STALE) == len(GOOD)
    plan, result, _ = world.apply()
    assert result.ok, result.failed
    touching = {a.kind for a in plan.actions if a.target.key == TARGET}
    assert touching == {ActionKind.REHASH}, "the same size must not read as the same content"
    assert world.lake.stat(TARGET) is not None and world.lake.stat(TARGET).md5 is not None  # type: ignore[union-attr]
    # Its md5 now known and not the source's: the next plan copies the source over it.
    again, result, _ = world.apply()
    assert result.ok, result.failed
    assert {a.kind for a in again.actions if a.target.key == TARGET} == {ActionKind.COPY}
    assert world.lake.get(TARGET) == GOOD
    assert not [a for a in world.plan().actions if a.target.key == TARGET]


def test_an_unknown_md5_whose_bytes_match_is_rehashed_once_and_then_left(tmp_path: Path) -> None:
    world = build(tmp_path)
    world.lake.put(TARGET, GOOD, foreign=True)
    plan, result, _ = world.apply()
    assert result.ok, result.failed
    assert {a.kind for a in plan.actions if a.target.key == TARGET} == {ActionKind.REHASH}
    assert not [a for a in world.plan().actions if a.target.key == TARGET]
    assert world.lake.get(TARGET) == GOOD


def test_a_saved_plan_with_the_rehashes_is_allowed_by_the_saved_plan_checks(tmp_path: Path) -> None:
    world = build(tmp_path)
    world.lake.put(TARGET, GOOD, foreign=True)
    world.lake.put(SOURCE, GOOD, foreign=True)  # both sides unknown: both are read
    desired, observed = world.observe()
    made = make_plan(desired, observed)
    rehashes = {a.target.key for a in made.actions if a.kind is ActionKind.REHASH}
    assert {SOURCE, TARGET} <= rehashes
    assert problems(desired, made) == []
