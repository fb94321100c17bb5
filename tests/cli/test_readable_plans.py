"""Plans that stay readable: findings per cause, one summary vocabulary, deletes first in the PR comment.

Each test states what the output was before (issue 24) in its comment and asserts what it is now.
"""

from __future__ import annotations

import dataclasses
import re

from hypothesis import given
from hypothesis import strategies as st

from reconciler.model import Action, ActionKind, Change, Finding, FindingKind, ObjectRef, Plan, Precondition
from reconciler.plan.render import render_text
from reconciler.plan.render_findings import fold_keys, group_findings
from reconciler.plan.render_markdown import render_markdown
from reconciler.plan.summary import closing_line, summary_line
from tests.unit.plan.fixed_plan import fixed_desired, fixed_plan


def _action(kind: ActionKind, change: Change, key: str, *, mapping: str = "raw", size: int = 10) -> Action:
    return Action(
        id=f"{kind.value}:s3:{key}",
        kind=kind,
        change=change,
        mapping=mapping,
        target=ObjectRef("s3", key),
        reason="why",
        size=size,
        precondition=Precondition(target_absent=True),
    )


def _demo_findings() -> tuple[Finding, ...]:
    """The demo's first plan: 12 images one actor declares and nobody has, and datasets two passes report."""
    images = tuple(
        Finding(
            FindingKind.MISSING,
            "actors",
            f"0042_{i}.jpg",
            f"actor 0042 declares 0042_{i}.jpg (count: 12) but it is neither local nor in S3",
        )
        for i in range(12)
    )
    datasets = tuple(
        finding
        for name in ("cot", "vqa")
        for finding in (
            Finding(
                FindingKind.MISSING,
                "datasets",
                f"pixel-data:datasets/processed/{name}.jsonl",
                f"dataset {name!r}: neither its source nor its canonical object exists",
            ),
            Finding(
                FindingKind.MISSING,
                "final_dataset",
                f"pixel-data:datasets/processed/{name}.jsonl",
                f"final dataset source {name!r} is not in S3 and nothing in this plan puts it there",
            ),
        )
    )
    return images + datasets


def test_findings_are_listed_once_per_cause() -> None:
    # Before: 16 `! missing` lines (12 images, each dataset twice) and "16 findings above".
    plan = Plan(actions=(), edges=(), findings=_demo_findings())
    text = render_text(plan)
    lines = [line for line in text.splitlines() if line.startswith("  ! ")]
    assert len(lines) == 3
    assert lines[0] == (
        "  ! missing ×12: [actors] actor 0042 declares 0042_{0–11}.jpg (count: 12) but it is neither local nor in S3"
    )
    cot = next(line for line in lines if "cot.jsonl" in line)
    assert "[datasets, final_dataset]" in cot and cot.count("cot.jsonl") == 1
    assert text.rstrip().endswith("No changes to apply; 3 findings above.")


def test_markdown_folds_findings_per_cause() -> None:
    # Before: one bullet per finding, never folded.
    plan = Plan(actions=(), edges=(), findings=_demo_findings())
    text = render_markdown(plan)
    assert text.startswith("### pixel plan: no changes to apply, 3 finding(s)")
    assert len([line for line in text.splitlines() if line.startswith("- **missing")]) == 3
    assert "- **missing ×12** [actors] actor 0042 declares 0042_{0–11}.jpg" in text
    many = tuple(
        Finding(FindingKind.ORPHAN, f"m{i}", f"k{i}", f"cause {i}") for i in range(40)
    )
    folded = render_markdown(Plan(actions=(), edges=(), findings=many))
    assert "<details><summary>40 orphan</summary>" in folded


def test_fold_keys_writes_ranges_and_keeps_zero_padding() -> None:
    assert fold_keys(["a_0.jpg", "a_1.jpg", "a_2.jpg", "a_5.jpg"]) == "a_{0–2,5}.jpg"
    assert fold_keys(["s-007.bin", "s-008.bin", "s-009.bin", "s-010.bin"]) == "s-{007–010}.bin"
    assert fold_keys(["x", "y"]) == "x, y"
    assert fold_keys([f"k{i}/z" for i in range(3)] + ["other"]) == "k0/z, k1/z, k2/z, other"
    assert fold_keys([f"x{i}" for i in range(7)] + ["y"]) == "x0, x1, x2, x3, x4, … (3 more)"


@given(st.sets(st.integers(min_value=0, max_value=500), min_size=1, max_size=40))
def test_a_folded_range_names_exactly_the_keys_it_folds(numbers: set[int]) -> None:
    text = fold_keys([f"img_{n}.jpg" for n in sorted(numbers)])
    if len(numbers) == 1:
        assert text == f"img_{next(iter(numbers))}.jpg"
        return
    inner = re.fullmatch(r"img_\{(.*)\}\.jpg", text)
    assert inner is not None
    named: set[int] = set()
    for part in inner.group(1).split(","):
        low, _, high = part.partition("–")
        named.update(range(int(low), int(high or low) + 1))
    assert named == numbers


@given(st.lists(st.tuples(st.sampled_from(list(FindingKind)), st.sampled_from(["a", "b"]), st.integers(0, 30))))
def test_grouping_loses_no_finding(raw: list[tuple[FindingKind, str, int]]) -> None:
    findings = [Finding(kind, scope, f"key-{n}", f"about key-{n}") for kind, scope, n in raw]
    groups = group_findings(findings)
    assert sorted({(f.kind, f.key) for f in findings}) == sorted((g.kind, k) for g in groups for k in g.keys)


def test_the_summary_line_counts_every_kind_with_one_number_format() -> None:
    # Before: verify was left out of the line (336 counted, 339 done) and 1000 had no separator.
    actions = [_action(ActionKind.UPLOAD, Change.CREATE, f"u{i}") for i in range(1_200)]
    actions += [_action(ActionKind.VERIFY, Change.READ, f"v{i}") for i in range(3)]
    actions += [_action(ActionKind.RELEASE_LOCAL, Change.DELETE, f"r{i}") for i in range(3)]
    plan = Plan(actions=tuple(actions), edges=())
    line = summary_line(plan)
    assert line == "Plan: 1,200 to upload, 0 to update, 3 to verify, 3 to release-local, 0 to delete."
    assert sum(int(n.replace(",", "")) for n in re.findall(r"([\d,]+) to ", line)) == len(actions)


def test_release_local_has_its_own_symbol() -> None:
    # Before: `- r0  (release-local ...)`, read as a delete.
    plan = Plan(actions=(_action(ActionKind.RELEASE_LOCAL, Change.DELETE, "r0"),), edges=())
    assert "  < r0  (release-local: why)" in render_text(plan).splitlines()


def test_markdown_blocks_count_like_the_table_and_deletes_come_first() -> None:
    # Before: the raw block said "13 upload" where the table said 12 upload / 1 update, and its delete sat
    # among the uploads inside a foldable block.
    text = render_markdown(fixed_plan(), fixed_desired())
    table = dict(re.findall(r"^\| ([\w-]+) \| ([\d,]+) \|", text, re.M))
    blocks: dict[str, int] = {}
    for counts in re.findall(r"— [\d,]+ action\(s\): ([^<\n]+)", text):
        for n, kind in re.findall(r"(\d[\d,]*) ([a-z-]+)", counts):
            blocks[kind] = blocks.get(kind, 0) + int(n.replace(",", ""))
    assert {k: int(v.replace(",", "")) for k, v in table.items() if v != "0"} == blocks
    deletes = text.index("#### Deletes")
    assert deletes < text.index("#### Other actions")
    first_details = text.index("<details")
    assert text.index("- datasets/gdrive/raw/old.jsonl") < first_details
    assert text.index("- datasets/acquired/mix.jsonl") < first_details


def test_a_long_block_is_folded_but_its_deletes_stay_visible() -> None:
    ups = [_action(ActionKind.UPLOAD, Change.CREATE, f"u/{i:03}") for i in range(30)]
    gone = [_action(ActionKind.DELETE, Change.DELETE, f"d/{i:03}") for i in range(30)]
    text = render_markdown(Plan(actions=(*ups, *gone), edges=()))
    assert "<details><summary><b>raw</b> — 30 action(s): 30 upload</summary>" in text
    assert "**raw** — 30 action(s): 30 delete" in text
    assert text.index("- d/029") < text.index("<details")


def test_closing_line_counts_causes_not_lines() -> None:
    plan = dataclasses.replace(fixed_plan(), findings=_demo_findings())
    assert closing_line(plan).endswith("3 findings above.")
