"""The PR comment: golden output, the delete banner, the size cap however big the plan, and its speed."""

from __future__ import annotations

import dataclasses

import pytest

from bench.render_bench import synthetic_plan
from reconciler.model import ActionKind, Change, Plan
from reconciler.plan.render_markdown import MAX_CHARS, render_markdown
from tests.unit.plan.fixed_plan import check_golden, fixed_desired, fixed_plan


def test_markdown_matches_golden() -> None:
    check_golden("plan.md", render_markdown(fixed_plan(), fixed_desired()))


def test_summary_table_counts_objects_and_bytes_per_category() -> None:
    text = render_markdown(fixed_plan(), fixed_desired())
    assert "| upload | 12 | 12.0 MiB |" in text
    assert "| move | 1 | 4.0 KiB |" in text
    assert "| delete | 2 | 4.5 KiB |" in text
    assert "| write-manifest | 1 | 300 B |" in text
    # Three blocks of other actions and the findings are foldable; the deletes never are.
    assert text.count("<details") == 4 and text.count("</details>") == 4
    assert "#### Findings (reported, not acted on)" in text and "1 orphan" in text


def test_a_red_banner_only_when_something_would_be_deleted() -> None:
    plan = fixed_plan()
    assert "> [!CAUTION]\n> **This plan deletes 2 object(s)" in render_markdown(plan)
    kept = tuple(a for a in plan.actions if a.change is not Change.DELETE)
    ids = {a.id for a in kept}
    no_deletes = dataclasses.replace(
        plan, actions=kept, edges=tuple(e for e in plan.edges if e[0] in ids and e[1] in ids)
    )
    assert "[!CAUTION]" not in render_markdown(no_deletes)


def test_releases_are_not_counted_as_deletes_in_the_banner_and_get_a_note_of_their_own() -> None:
    plan = fixed_plan()
    delete = next(a for a in plan.actions if a.change is Change.DELETE)
    release = dataclasses.replace(delete, id="release-local:disk:raw/a.jsonl", kind=ActionKind.RELEASE_LOCAL, size=2048)
    with_release = dataclasses.replace(plan, actions=(*plan.actions, release))
    text = render_markdown(with_release)
    assert "**This plan deletes 2 object(s) (4.5 KiB).**" in text
    assert "> [!NOTE]\n> Releases 1 local copy (2.0 KiB) once S3 is confirmed to hold the same bytes" in text
    only_release = dataclasses.replace(plan, actions=(release,), edges=())
    text = render_markdown(only_release)
    assert "[!CAUTION]" not in text and "Releases 1 local copy" in text
    assert "release-local" in text  # still listed with the deletes: a reviewer sees every file that goes


def test_title_says_the_result() -> None:
    assert render_markdown(Plan(actions=(), edges=())).startswith("### ✅ pixel plan: no changes\n")
    broken = dataclasses.replace(fixed_plan(), errors=("mapping 'raw' would delete too much",))
    text = render_markdown(broken)
    assert text.startswith("### ❌ pixel plan: cannot be applied (1 error(s))")
    assert "mapping &#x27;raw&#x27; would delete too much" in text


def test_a_huge_plan_stays_under_the_cap_and_says_what_it_left_out() -> None:
    plan = synthetic_plan(50_000)
    # Findings of as many causes as actions: they cannot be folded into one line per cause.
    causes = tuple(dataclasses.replace(f, message=f"{f.message} ({i})") for i, f in enumerate(plan.findings * 100))
    plan = dataclasses.replace(plan, findings=causes)
    text = render_markdown(plan)
    assert len(text) < MAX_CHARS
    assert "more action(s) in mapping-0 not shown" in text
    assert "more finding(s) not shown" in text
    # Every mapping still gets its block, and the table still counts everything.
    assert all(f"<b>mapping-{i}</b>" in text for i in range(7))
    assert "| upload | 12,500 |" in text and "| delete | 12,500 |" in text


@pytest.mark.parametrize("cap", [3_000, 10_000])
def test_the_cap_holds_for_smaller_limits_too(cap: int) -> None:
    assert len(render_markdown(synthetic_plan(5_000), max_chars=cap)) < cap


def test_keys_with_backticks_cannot_break_out_of_the_code_block() -> None:
    plan = fixed_plan()
    odd = dataclasses.replace(
        plan.actions[0], target=dataclasses.replace(plan.actions[0].target, key="a/```evil.jsonl")
    )
    text = render_markdown(dataclasses.replace(plan, actions=(odd, *plan.actions[1:])))
    assert "```evil" not in text and "'''evil" in text


def test_200k_actions_render_under_the_cap() -> None:
    # How fast is measured by `make bench` (bench/render_bench.py), not asserted here.
    assert len(render_markdown(synthetic_plan(200_000))) < MAX_CHARS


def test_synthetic_plan_has_every_kind_the_benchmark_claims() -> None:
    kinds = {a.kind for a in synthetic_plan(8).actions}
    assert kinds == {ActionKind.UPLOAD, ActionKind.COPY, ActionKind.DELETE}


def test_an_enormous_error_is_clipped_not_hidden() -> None:
    broken = dataclasses.replace(fixed_plan(), errors=("x" * 200_000,))
    text = render_markdown(broken)
    assert len(text) < MAX_CHARS
    assert "x" * 2_000 + "… (198,000 more characters)" in text and "more error(s)" not in text


def test_a_heading_longer_than_the_cap_still_gets_a_postable_comment() -> None:
    plan = fixed_plan()
    odd = tuple(dataclasses.replace(a, mapping="m" * 5_000) for a in plan.actions)
    text = render_markdown(dataclasses.replace(plan, actions=odd), max_chars=3_000)
    assert len(text) < 3_000 and text.endswith("_… truncated to stay under the comment size limit._\n")
