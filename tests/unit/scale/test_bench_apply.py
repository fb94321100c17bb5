"""`bench.million --stream --apply` at a small size: the plan file it writes is applied whole, streamed."""

from __future__ import annotations

import pytest

from bench.million import main, run_apply


@pytest.mark.slow
def test_the_apply_bench_applies_every_action_it_planned() -> None:
    result = run_apply(3_000)
    assert result["actions"] == 3_000  # every object changed: one upload each, every one done
    assert result["peak_rss_mib"] >= result["baseline_rss_mib"] > 0
    assert result["plan_file_bytes_per_action"] > 0


def test_apply_needs_the_streaming_planner() -> None:
    with pytest.raises(SystemExit):
        main(["--apply"])
