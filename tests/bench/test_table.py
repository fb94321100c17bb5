"""The bench's table and flags, without running a case: issue 28's rows are printed, `--quick` only shrinks."""

from __future__ import annotations

from bench import dataset
from bench.__main__ import QUICK, parse, table


def _far(size: int) -> dict[str, dict[str, float]]:
    cases = {f"latency_{size}_pixel_p{p}": {"seconds": 1.0 + p / 100, "rss_mib": 50.0} for p in (1, 4, 16)}
    cases[f"latency_{size}_rclone_check"] = {"seconds": 3.0, "rss_mib": 40.0}
    return cases


def test_the_table_shows_the_far_no_op_of_each_tree_and_the_saved_plan() -> None:
    saved = {"actions": 200_000, "write_seconds": 1.5, "read_seconds": 2.5, "read_cpu_seconds": 2.4,
             "bytes": 95e6, "rss_mib": 360.0}
    summary = {"cases": {**_far(10_000), **_far(100_000), "saved_plan": saved}}
    text = table(summary, {}, dataset.Shape(small_files=10, big_files=0), runs=3)
    lines = text.splitlines()
    far = [line for line in lines if "no-op, warm, 25 ms each way, 100,000 objects" in line]
    assert [line.split("|")[2].strip() for line in far] == [
        "pixel plan -p 1", "pixel plan -p 4", "pixel plan -p 16", "rclone check"
    ]
    assert "1.16" in far[2] and "3.00" in far[3]
    assert any("saved plan of 200,000 actions: read + check" in line and "2.50" in line for line in lines)
    assert any("no-op warm at 25 ms each way, 100,000 objects / rclone check: 0.34x" in line for line in lines)
    assert any("saved plan of 200,000 actions: read + check: 2.50 s (target <= 3.0 s)" in line for line in lines)


def test_quick_shrinks_the_defaults_and_a_flag_given_still_counts() -> None:
    full, quick = parse([]), parse(["--quick"])
    assert full.latency == "10000,100000" and full.saved_plan == 200_000 and full.runs == 3
    assert {name: getattr(quick, name) for name in QUICK} == QUICK
    assert parse(["--quick", "--latency", "100000", "--runs", "2"]).latency == "100000"
    assert parse(["--runs", "2", "--quick"]).runs == 2
