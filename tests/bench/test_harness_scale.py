"""`make bench`'s final-dataset compile row and its beyond-one-machine section (LocalCluster, inventory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.harness import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_final_compile_and_scale_rows_are_measured(tmp_path: Path) -> None:
    bench = run_bench(tmp_path, "--final-mib", "2", "--scale-actions", "16", "--scale-objects", "2000")
    final = bench.results["extra"]["final_compile"]
    assert final["records_read"] == final["duplicates"] + sum(final["written"].values()) > 0
    assert final["mb_per_s"] > 0 and final["rss_mib"] > 0
    assert "| final dataset: compile 2 MiB JSONL" in bench.stdout
    scale = bench.results["extra"]["scale"]
    assert scale["uploads"]["local"] > 0 and scale["copies"]["dask"] > 0 and scale["copies"]["ratio"] > 0
    assert scale["inventory"]["actions"] == 20  # the same plan from the report as from the listing
    assert "LocalCluster(2)" in bench.stdout
