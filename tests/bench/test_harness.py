"""`make bench` end to end on a tiny dataset: every case runs, the figures land in results.json, the table prints.

How fast pixel is gets measured by the real run; here only that the harness measures what it says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import hashstage
from bench.measure import run
from reconciler.observe.hashcache import RACY_WINDOW_NS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
@pytest.mark.slow
def test_bench_runs_every_case_for_pixel_and_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    argv = [sys.executable, "-m", "bench", "--runs", "1", "--tools", "pixel", "--small", "60", "--big", "1"]
    argv += ["--big-mib", "1", "--edits", "10", "--million", "2000", "--out", str(out), "--work", str(tmp_path / "w")]
    argv += ["--loader-mib", "2", "--loader-shards", "3", "--loader-shard-mib", "0.2"]
    argv += ["--service-clients", "3", "--service-requests", "5", "--service-wrk-seconds", "1"]
    argv += ["--final-mib", "2"]
    argv += ["--scale-actions", "160", "--scale-objects", "2000"]
    argv += ["--latency", "40", "--saved-plan", "300", "--big-files", "1", "--big-files-mib", "1"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    pixel = results["medians"]["pixel"]
    assert pixel["upload"]["objects_per_s"] > 0
    # The warm no-op reads no file content; the cold one hashes every file (60 small + 1 big).
    assert pixel["files_read"] == {"cold": 61, "warm": 0}
    # Every same-size edit reaches S3, the ones whose mtime was put back included.
    assert pixel["edits"]["caught"] == 10
    assert pixel["edits_mtime_restored"]["caught"] == 10
    assert (pixel["floor"]["files"], pixel["floor"]["objects"]) == (61, 61)  # stat-ed, listed
    assert (pixel["hash_stage_cold"]["read"], pixel["hash_stage_warm"]["read"]) == (61, 0)
    assert pixel["hash_stage_warm"]["from_cache"] == 61
    assert results["extra"]["million"]["actions"] == 20  # 1% of 2,000 objects changed
    service = results["extra"]["service"]
    assert (service["requests"], service["errors"], service["images"]) == (15, 0, 500)
    assert 0 < service["p50_ms"] <= service["p99_ms"]
    assert service["wrk"] is None or len(service["wrk"]) == 12  # 4 routes x 1, 10, 50 connections, where wrk is
    final = results["extra"]["final_compile"]
    assert final["records_read"] == final["duplicates"] + sum(final["written"].values()) > 0
    assert final["mb_per_s"] > 0 and final["rss_mib"] > 0
    assert "| final dataset: compile 2 MiB JSONL" in done.stdout
    scale = results["extra"]["scale"]
    assert scale["uploads"]["local"] > 0 and scale["copies"]["dask"] > 0 and scale["copies"]["ratio"] > 0
    assert scale["inventory"]["actions"] == 20  # the same plan from the report as from the listing
    assert "LocalCluster(2)" in done.stdout
    assert "| initial upload" in done.stdout and "Targets (ratios from this run):" in done.stdout
    loader = results["extra"]["loader"]
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
    assert "Loader targets" in done.stdout and "pixel warm / cold" in done.stdout
    assert "one_big: pixel 4 ranks aggregate / 1 rank cold" in done.stdout
    assert "4 ranks at once, cold (aggregate)" in done.stdout
    assert "service: 3 clients x 5 GETs" in done.stdout and "service training-data p99 latency" in done.stdout
    (cases,) = [r for r in results["runs"] if r.get("tool") == "cases"]
    assert cases["latency_40_pixel_p1"]["seconds"] > 0 and "saved_plan" in cases and "big_upload_pixel" in cases
    assert "spread" in results["extra"]


def test_measure_reports_the_childs_own_peak_not_the_harness(tmp_path: Path) -> None:
    grow = "x = bytearray(64 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"
    small = run([sys.executable, "-c", "pass"], env={"PATH": "/usr/bin:/bin"})
    big = run([sys.executable, "-c", grow], env={"PATH": "/usr/bin:/bin"})
    assert small.peak_rss_mib < 40  # a bare interpreter, whatever this test process holds
    assert big.peak_rss_mib > small.peak_rss_mib + 60


def test_hash_stage_warm_reads_nothing_however_new_the_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The tree is written just now, inside the racy window: the cold stage still fills the cache for the warm one."""
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    for i in range(5):
        (root / "sub" / f"f{i}.bin").write_bytes(bytes([i]) * (100 + i))
    stages = []
    for _ in range(2):
        hashstage.main(str(root), str(tmp_path / "cache"))
        stages.append(json.loads(capsys.readouterr().out))
    assert [(s["files"], s["read"], s["from_cache"]) for s in stages] == [(5, 5, 0), (5, 0, 5)]


def test_settled_clock_stands_past_the_newest_files_racy_window(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    st = path.stat()
    newest = max(st.st_mtime_ns, st.st_ctime_ns)
    assert hashstage.settled_clock([path], now=lambda: newest)() == newest + RACY_WINDOW_NS + 1
    later = newest + 10 * RACY_WINDOW_NS
    assert hashstage.settled_clock([path], now=lambda: later)() == later  # never holds the real clock back
