"""`python -m bench` in a child on tiny trees, every section off unless a test turns it on.

The harness end to end is one long child; run whole it pinned one pytest-xdist worker for minutes. Each
test_harness_* module runs the sections it checks, so the modules spread over the workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# Every sized section skipped: a test passes the flags of the ones it checks after these (argparse: the last
# wins). The loader and markdown sections are switched off by flags of their own, hence `loader`/`markdown`.
NOTHING = [
    "--runs", "1", "--tools", "none", "--latency", "", "--saved-plan", "0", "--big-files", "0",
    "--service-requests", "0", "--final-mib", "0", "--scale-actions", "0", "--million", "0",
]


@dataclass(frozen=True)
class Bench:
    results: dict[str, Any]
    stdout: str


def run_bench(tmp_path: Path, *sections: str, loader: bool = False, markdown: bool = False) -> Bench:
    out = tmp_path / "results.json"
    off = [flag for flag, wanted in (("--no-loader", loader), ("--no-markdown", markdown)) if not wanted]
    argv = [sys.executable, "-m", "bench", *NOTHING, *off, *sections, "--out", str(out), "--work", str(tmp_path / "w")]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return Bench(json.loads(out.read_text()), done.stdout)
