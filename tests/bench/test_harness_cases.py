"""`make bench`'s cases beside the tool runs: the warm no-op behind the 25 ms relay, the saved plan, the markdown
render and the synthetic plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.harness import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_relay_saved_plan_markdown_and_synthetic_plan_rows_are_measured(tmp_path: Path) -> None:
    bench = run_bench(
        tmp_path, "--latency", "40", "--saved-plan", "300", "--million", "2000", "--markdown-actions", "2000",
        markdown=True,
    )
    results = bench.results
    (cases,) = [r for r in results["runs"] if r.get("tool") == "cases"]
    assert cases["latency_40_pixel_p1"]["seconds"] > 0 and cases["saved_plan"]["actions"] == 300
    assert results["extra"]["million"]["actions"] == 20  # 1% of 2,000 objects changed
    assert results["extra"]["markdown"]["chars"] > 0 and results["extra"]["markdown"]["actions"] == 2000
    assert "no-op, warm, 25 ms each way, 40 objects" in bench.stdout
    assert "saved plan of 300 actions: write" in bench.stdout and "plan of 1,000,000 objects" in bench.stdout
