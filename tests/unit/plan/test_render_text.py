"""Text rendering: golden output without colour, colour only when wanted, --compact folding, moves as a => b."""

from __future__ import annotations

from reconciler.commands.output import color_wanted
from reconciler.model import Plan
from reconciler.plan.render import compact_lines, render_text
from tests.unit.plan.fixed_plan import check_golden, fixed_desired, fixed_plan


def test_text_matches_golden() -> None:
    check_golden("plan.txt", render_text(fixed_plan(), fixed_desired()))


def test_compact_text_matches_golden() -> None:
    check_golden("plan_compact.txt", render_text(fixed_plan(), fixed_desired(), compact=True))


def test_compact_folds_a_long_run_under_one_prefix_with_count_and_bytes() -> None:
    text = render_text(fixed_plan(), fixed_desired(), compact=True)
    assert "  + 12 objects under datasets/gdrive/raw/cot/ (12.0 MiB)  [upload]" in text
    assert "shard-03" not in text
    # Short runs stay listed one by one.
    assert "~ datasets/gdrive/raw/notes.json" in text


def test_compact_keeps_runs_at_the_threshold_in_full() -> None:
    actions = list(fixed_plan().actions[:10])
    assert len(compact_lines(actions, color=False)) == 10


def test_moves_read_source_then_target_and_groups_name_their_mapping() -> None:
    text = render_text(fixed_plan(), fixed_desired())
    assert "+ datasets/acquired/mix.jsonl => datasets/gdrive/processed/priority/mix.jsonl  (move" in text
    assert "  # raw: staging:raw → pixel-data:datasets/gdrive/raw/" in text
    assert text.index("# processed") < text.index("# raw") < text.index("# registry")


def test_colour_only_when_asked_and_never_with_no_color() -> None:
    plain = render_text(fixed_plan(), fixed_desired())
    coloured = render_text(fixed_plan(), fixed_desired(), color=True)
    assert "\x1b[" not in plain
    assert "\x1b[31m-\x1b[0m datasets/gdrive/raw/old.jsonl" in coloured
    assert color_wanted(True, {}) is True
    assert color_wanted(False, {}) is False
    assert color_wanted(True, {"NO_COLOR": ""}) is False  # set to anything, even empty
    assert color_wanted(True, {"NO_COLOR": "1"}) is False


def test_an_empty_plan_says_no_changes() -> None:
    assert render_text(Plan(actions=(), edges=())) == "No changes. Storage matches the specs.\n"
