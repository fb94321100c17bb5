"""`make bench`'s service row: clients of `pixel serve` against a real actor, and wrk where it is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.harness import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_service_row_counts_every_request_and_its_latency(tmp_path: Path) -> None:
    bench = run_bench(tmp_path, "--service-clients", "3", "--service-requests", "5", "--service-wrk-seconds", "1")
    service = bench.results["extra"]["service"]
    assert (service["requests"], service["errors"], service["images"]) == (15, 0, 500)
    assert 0 < service["p50_ms"] <= service["p99_ms"]
    assert service["wrk"] is None or len(service["wrk"]) == 12  # 4 routes x 1, 10, 50 connections, where wrk is
    assert "service: 3 clients x 5 GETs" in bench.stdout and "service training-data p99 latency" in bench.stdout
