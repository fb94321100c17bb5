"""`--target NAME` narrowing, pure: the repository's specs cut down to one part, recorded in the plan and its file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reconciler.model import Action, ActionKind, Change, Desired, ObjectRef, Observed, Precondition
from reconciler.observe.world import tiers_to_list
from reconciler.plan import plan as make_plan
from reconciler.plan import saved_checks, serialize
from reconciler.plan.render import render_text
from reconciler.plan.render_markdown import render_markdown
from reconciler.plan.serialize import PlanFileError
from reconciler.spec import load_desired
from reconciler.targets import UnknownTarget, narrow, same_actor_id

REPO = Path(__file__).resolve().parents[3]
A42 = "actors/0042_european_30_male"


@pytest.fixture(scope="module")
def desired() -> Desired:
    return load_desired(REPO / "specs", {})


def test_no_target_is_everything(desired: Desired) -> None:
    assert narrow(desired, []) is desired
    assert tiers_to_list(desired) == list(desired.tiers)


@pytest.mark.parametrize("name", ["actors/42", "actors/0042", "actors/00042", A42])
def test_an_actor_target_keeps_its_mapping_and_manifest_only(desired: Desired, name: str) -> None:
    narrowed = narrow(desired, [name])
    assert [m.name for m in narrowed.mappings] == [A42]
    assert [a.actor_id for a in narrowed.actors] == ["0042"]
    assert narrowed.datasets == () and narrowed.registry is None and narrowed.inventory is None
    assert narrowed.tiers == desired.tiers  # the tier rules still judge its deletes
    assert narrowed.stores == desired.stores and narrowed.spec_digest == desired.spec_digest
    assert narrowed.targets == (name,)
    assert tiers_to_list(narrowed) == []  # no dataset, no inventory: no tier is listed


def test_a_dataset_target_lists_only_the_tiers_it_lies_in_or_comes_from(desired: Desired) -> None:
    narrowed = narrow(desired, ["socratic_chains"])
    assert narrowed.mappings == () and [d.name for d in narrowed.datasets] == ["socratic_chains"]
    assert [t.name for t in tiers_to_list(narrowed)] == ["processed", "acquired"]


def test_targets_add_up_and_repeats_count_once(desired: Desired) -> None:
    narrowed = narrow(desired, ["raw", "clinical_cot", "raw", "actors/42"])
    assert narrowed.targets == ("raw", "clinical_cot", "actors/42")
    assert sorted(m.name for m in narrowed.mappings) == [A42, "raw"]
    assert [d.name for d in narrowed.datasets] == ["clinical_cot"]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("nope", "--target 'nope' names no part of the specs: expected a mapping name, actors/ID"),
        ("actors/7", "--target 'actors/7' names no part"),
        ("actors/", "--target 'actors/' names no part"),
    ],
)
def test_an_unknown_target_names_what_there_is(desired: Desired, name: str, words: str) -> None:
    with pytest.raises(UnknownTarget) as caught:
        narrow(desired, [name])
    assert words in str(caught.value)
    assert "mappings: training_ready, raw, processed;" in str(caught.value)
    assert "actors: actors/0042" in str(caught.value)


def test_final_dataset_targets_only_its_section(desired: Desired) -> None:
    assert desired.final is not None
    narrowed = narrow(desired, ["final_dataset"])
    assert (narrowed.final, narrowed.mappings, narrowed.datasets) == (desired.final, (), ())
    assert narrow(desired, ["raw"]).final is None  # another target leaves the final dataset alone
    with pytest.raises(UnknownTarget, match="no final dataset is declared in the specs"):
        narrow(dataclasses.replace(desired, final=None), ["final_dataset"])


def test_ids_compare_as_numbers_only_when_both_are_numbers() -> None:
    assert same_actor_id("42", "0042") and same_actor_id("0042", "42") and not same_actor_id("42", "0043")
    assert same_actor_id("abc", "abc") and not same_actor_id("42", "abc")


def test_the_plan_and_its_file_record_the_targets(desired: Desired) -> None:
    narrowed = narrow(desired, ["raw"])
    plan = make_plan(narrowed, Observed(mappings={}))
    assert plan.targets == ("raw",)
    assert "> [!WARNING]\n> Targeted plan: only raw (--target)" in render_markdown(plan)
    assert render_text(plan).startswith("Targeted plan: only raw (--target); the rest of the specs was not observed")
    assert "Targeted" not in render_text(make_plan(desired, Observed(mappings={})))
    text = serialize.dumps(plan)
    assert serialize.loads(text).targets == ("raw",)
    assert "targets" not in serialize.to_dict(make_plan(desired, Observed(mappings={})))
    data = serialize.to_dict(plan)
    data["targets"] = []
    with pytest.raises(PlanFileError):
        serialize.from_dict(data)


def test_a_saved_targeted_plan_refuses_actions_outside_its_targets(desired: Desired) -> None:
    key = "datasets/gdrive/processed/priority/x.json"
    upload = Action(
        id=f"upload:pixel-data:{key}",
        kind=ActionKind.UPLOAD,
        change=Change.CREATE,
        mapping="processed",
        target=ObjectRef("pixel-data", key),
        source=ObjectRef("staging", "processed/priority/x.json"),
        size=3,
        reason="new file",
        precondition=Precondition(target_absent=True, source_size=3),
    )
    whole = make_plan(desired, Observed(mappings={}))
    ok = dataclasses.replace(whole, actions=(upload,))
    assert saved_checks.problems(desired, ok) == []
    assert saved_checks.problems(desired, dataclasses.replace(ok, targets=("processed",))) == []
    found = saved_checks.problems(desired, dataclasses.replace(ok, targets=("raw",)))
    assert found == [f"upload pixel-data:{key} lies outside the plan's targets (raw)"]
