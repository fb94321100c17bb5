"""`make demo`'s first act reads as intended: its findings one line per cause, and said to be expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.dev import demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_the_first_plan_lists_nine_causes_and_says_why(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the demo runs from the repository root, with its specs
    assert demo.main(["--data", str(tmp_path / "demo-data"), "--skip-world"]) == 0
    out = capfd.readouterr().out
    first, converged = (part.split("[exit ")[0] for part in out.split("$ pixel plan")[1:3])
    # Before: 28 `! missing` lines (one per image of actor 0042, each dataset under [datasets] and again
    # under [final_dataset]) and "28 findings above", in the first plan and in the converged one.
    for plan in (first, converged):
        findings = [line for line in plan.splitlines() if line.startswith("  ! ")]
        assert len(findings) == 9, findings
        assert sum("[datasets, final_dataset]" in line for line in findings) == 8
        assert any("missing ×12: [actors/0042_european_30_male]" in line for line in findings)
    assert "No changes to apply; 9 findings above." in converged
    assert demo.FIRST_ACT_NOTE_ALONE in out
