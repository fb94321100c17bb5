"""`make bench`'s loader section on tiny objects: every reader reads every record, timed, and the table says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.harness import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_loader_section_times_every_reader_on_both_cases(tmp_path: Path) -> None:
    bench = run_bench(tmp_path, "--loader-mib", "2", "--loader-shards", "3", "--loader-shard-mib", "0.2", loader=True)
    loader = bench.results["extra"]["loader"]
    for case in ("one_big", "shards"):
        readers = loader["summary"][case]
        # Every reader read every record (checked by the harness) and was timed; warm follows cold.
        assert {"naive", "naive_orjson", "pixel_cold", "pixel_warm"} <= set(readers)
        assert all(r["records_per_s"]["median"] > 0 and r["rss_mib"]["min"] > 0 for r in readers.values())
    assert loader["cases"]["shards"]["records"] > 0
    # 4 ranks over the big object: each read its equal share (else the harness fails), timed together.
    (ranks,) = loader["runs"]["one_big"]["pixel_ranks"]
    assert ranks["records_per_s"] > 0 and ranks["seconds"] > 0 and ranks["rss_mib"] > 0
    assert "pixel_ranks" not in loader["summary"]["shards"]
    assert "Loader targets" in bench.stdout and "pixel warm / cold" in bench.stdout
    assert "one_big: pixel 4 ranks aggregate / 1 rank cold" in bench.stdout
    assert "4 ranks at once, cold (aggregate)" in bench.stdout
