"""Reading a saved plan an element at a time refuses exactly what `pixel apply FILE` refuses."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.commands.planfile import dump, load_saved
from reconciler.plan.serialize import PlanFileError
from reconciler.scale.reader import _Tokens, read_into
from reconciler.scale.spill import Spill
from tests.unit.plan.fixed_plan import fixed_plan


def _edited(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    path = tmp_path / "plan.json"
    dump(fixed_plan(), path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=1))
    return path


def _both_refuse(path: Path, match: str) -> None:
    with pytest.raises(PlanFileError, match=match):
        load_saved(path)
    with Spill(path.parent / "spill") as spill, pytest.raises(PlanFileError, match=match):
        read_into(path, spill, chunk=5)


def test_the_fixed_plan_reads_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    dump(fixed_plan(), path)
    whole = load_saved(path).plan
    with Spill(tmp_path / "spill") as spill:
        # Edges come back sorted, the order both planners write them in (this hand-made plan's are not).
        assert read_into(path, spill, chunk=3).to_plan() == dataclasses.replace(whole, edges=tuple(sorted(whole.edges)))


def test_a_truncated_file_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    dump(fixed_plan(), path)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    _both_refuse(path, "not JSON")


def test_an_edited_summary_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, lambda d: d["summary"]["upload"].update(count=d["summary"]["upload"]["count"] + 1))
    _both_refuse(path, "the summary contradicts the actions")


def test_an_edited_finding_breaks_the_guard_digest(tmp_path: Path) -> None:
    path = _edited(tmp_path, lambda d: d["findings"].pop())
    _both_refuse(path, "the guard digest does not match")


def test_two_actions_with_one_id_are_refused(tmp_path: Path) -> None:
    def twice(d: dict[str, Any]) -> None:
        d["actions"].append(d["actions"][0])
        first = d["actions"][0]
        category = "update" if first["change"] == "update" else first["kind"]
        d["summary"][category]["count"] += 1
        d["summary"][category]["bytes"] += first["size"]

    _both_refuse(_edited(tmp_path, twice), "two actions share one id")


def test_an_edge_to_no_action_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, lambda d: d["edges"].append([d["actions"][0]["id"], "upload:s3:nowhere"]))
    _both_refuse(path, "names an unknown action")


def test_applyable_against_the_errors_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, lambda d: d.update(applyable=not d["applyable"]))
    _both_refuse(path, "contradicts the plan's errors list")


def test_text_after_the_plan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    dump(fixed_plan(), path)
    path.write_text(path.read_text() + "{}")
    _both_refuse(path, "not JSON")


@pytest.mark.parametrize("chunk", [1, 2, 3, 100])
def test_a_number_cut_by_a_read_is_read_whole(chunk: int) -> None:
    tokens = _Tokens(io.StringIO('{"n": 12345, "m": [678, 9.5e3], "s": "x"}'), "t", chunk)
    assert tokens.value() == {"n": 12345, "m": [678, 9.5e3], "s": "x"}
    tokens = _Tokens(io.StringIO("123 456"), "t", chunk)
    assert (tokens.value(), tokens.value(), tokens.at_end()) == (123, 456, True)
