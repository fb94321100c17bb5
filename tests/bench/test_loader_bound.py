"""The loader table's cores' bound for a cold read (issue 25, cold25): from the CPU each reader and the server used,
what pixel/naive+orjson can reach with every core busy, and how much of pixel's extra CPU is the safety work."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from bench.loader import safety_cpu, targets

SAFETY = {"digest": "SHA-256", "digest_s": 0.16, "cache_write_s": 0.10}


def section(with_safety: bool = True, naive: bool = True) -> dict[str, Any]:
    readers = {"pixel_cold": {"cpu_s": 1.25, "server_cpu_s": 1.55, "seconds": 2.8, "records_per_s": 60_000.0},
               "pixel_warm": {"records_per_s": 200_000.0}}
    if naive:
        readers["naive_orjson"] = {"cpu_s": 0.8, "server_cpu_s": 1.55, "seconds": 2.35, "records_per_s": 80_000.0}
    summary = {r: {m: {"min": v, "median": v, "max": v} for m, v in ms.items()} for r, ms in readers.items()}
    return {"summary": {"one_big": summary}, "cases": {"one_big": {"safety": SAFETY} if with_safety else {}}}


def test_the_cold_bound_is_the_inverse_ratio_of_each_readers_and_the_servers_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    info = [line for line in targets(section()) if line.startswith("[info]")]
    assert info[0] == (
        "[info] one_big: pixel cold uses 0.45 cores + server 0.55; naive+orjson 0.34 + 0.66 (CPU s a pass: pixel "
        "1.25 + 1.55, naive+orjson 0.80 + 1.55); on 2 cores both CPU-bound, pixel/naive+orjson is at most 0.84x"
    )  # (0.80 + 1.55) / (1.25 + 1.55)
    assert info[1] == (
        "[info] one_big: pixel's CPU less naive+orjson's: 0.45 s, of which the SHA-256 of every byte 0.16 s and "
        "the cache write + fdatasync 0.10 s (timed in-process on the same bytes), the rest 0.19 s; without that "
        "safety work the bound would be 0.93x"
    )  # (0.80 + 1.55) / (1.25 - 0.26 + 1.55)


def test_without_naive_orjson_or_the_safety_figures_nothing_is_claimed() -> None:
    assert not [line for line in targets(section(naive=False)) if "CPU-bound" in line]
    lines = targets(section(with_safety=False))
    assert any("CPU-bound" in line for line in lines) and not any("safety work" in line for line in lines)


def test_the_safety_work_is_timed_on_the_bytes_and_leaves_no_file(tmp_path: Path) -> None:
    pieces = [bytes([i]) * (4 << 20) for i in range(4)]
    measured = safety_cpu([pieces, pieces[:1]], hashlib.sha256, "SHA-256", tmp_path / "probe")
    assert measured["digest"] == "SHA-256" and measured["digest_s"] > 0 and measured["cache_write_s"] > 0
    assert not (tmp_path / "probe").exists()
