"""kill -9 while a streamed plan file is being written leaves nothing `pixel apply` would accept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.commands.planfile import load_saved
from reconciler.plan.serialize import PlanFileError
from reconciler.scale.spill import Spill

ROOT = Path(__file__).resolve().parents[2]


def _child(out: Path, parent: Path, n: int, stop_at: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "tests.integration.stream_plan_child", str(out), str(parent), str(n), str(stop_at)]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _lines_until(child: subprocess.Popen[str], prefix: str) -> list[str]:
    assert child.stdout is not None
    seen = []
    for line in child.stdout:  # blocks on the child's own progress, not on a clock
        seen.append(line.strip())
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"the child ended before printing {prefix!r}: {seen}, exit {child.wait()}")


@pytest.mark.slow
def test_sigkill_mid_write_leaves_no_plan_file_apply_accepts(tmp_path: Path) -> None:
    out, parent = tmp_path / "plan.json", tmp_path / "cache" / "spill"
    child = _child(out, parent, 20_000, stop_at=5_000)
    try:
        seen = _lines_until(child, "written 5000")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    spill_dir = Path(next(line for line in seen if line.startswith("spill ")).split(" ", 1)[1])

    assert not out.exists()
    partial = list(tmp_path.glob(".plan.json.*.tmp"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0
    # What the killed writer left is cut off mid-array: refused whole, as apply reads every plan file.
    with pytest.raises(PlanFileError, match="not JSON"):
        load_saved(partial[0])

    # SIGKILL ran no cleanup: the next spill in that directory removes the dead process's.
    assert spill_dir.exists()
    with Spill(parent) as spill:
        assert not spill_dir.exists()
        assert spill.directory.exists()
    assert list(parent.iterdir()) == []


@pytest.mark.slow
def test_the_same_child_left_alone_writes_a_plan_apply_accepts(tmp_path: Path) -> None:
    out, parent = tmp_path / "plan.json", tmp_path / "spill"
    child = _child(out, parent, 2_000, stop_at=-1)
    seen = _lines_until(child, "done")
    assert child.wait() == 0, seen
    plan = load_saved(out).plan
    assert len(plan.actions) == 2_000
    assert {a.kind.value for a in plan.actions} == {"upload"}
    assert list(tmp_path.glob(".plan.json.*")) == []
    assert list(parent.iterdir()) == []
