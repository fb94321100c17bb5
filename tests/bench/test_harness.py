"""`make bench` end to end on a tiny dataset: every case runs, the figures land in results.json, the table prints.
(Its sections are split over test_harness*.py, one child each, so pytest-xdist spreads them.)

How fast pixel is gets measured by the real run; here only that the harness measures what it says.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench import hashstage
from bench.measure import run
from reconciler.observe.hashcache import RACY_WINDOW_NS
from tests.bench.harness import run_bench


@pytest.mark.integration
@pytest.mark.slow
def test_bench_runs_every_case_for_pixel_and_writes_results(tmp_path: Path) -> None:
    """The tool cases and the big-file upload; the other sections are checked by test_harness_cases,
    test_harness_loader, test_harness_service and test_harness_scale."""
    bench = run_bench(
        tmp_path, "--tools", "pixel", "--small", "60", "--big", "1", "--big-mib", "1", "--edits", "10",
        "--big-files", "1", "--big-files-mib", "1",
    )
    results, stdout = bench.results, bench.stdout
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
    assert results["medians"]["pixel [small-only]"]["files_read"] == {"cold": 60, "warm": 0}
    assert "| initial upload" in stdout and "Targets (ratios from this run):" in stdout
    # The second warm no-op (the one the first one's memo can answer) is measured, shown and judged.
    assert pixel["noop_memo"]["seconds"] > 0 and "| no-op, warm hash cache + no-op memo" in stdout
    assert "no-op memo / floor" in stdout
    (cases,) = [r for r in results["runs"] if r.get("tool") == "cases"]
    assert cases["big_upload_pixel"]["mb_per_s"] > 0
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
