"""Run one command as a child process: its wall time and its own peak RSS.

Linux carries a parent's resident-set high-water mark into a child it forks and
execs, so a command started straight from this (large) harness would report the
harness's own peak. Each command is therefore started through a small launcher
(`python -m bench.measure OUT -- argv...`) that forks it again and reports the
grandchild's wall time and ru_maxrss from wait4.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str


class CommandFailed(RuntimeError):
    pass


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    ok: tuple[int, ...] = (0,),
    timeout: float = 1800.0,
) -> Run:
    """Run `argv`; raise CommandFailed (with the end of its stderr) unless it exits with one of `ok`."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as report:
        launcher = [sys.executable, "-m", "bench.measure", report.name, "--", *argv]
        # The launcher imports bench.measure from the repository, whatever the command's cwd.
        launcher_env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))}
        try:
            done = subprocess.run(
                launcher, env=launcher_env, cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise CommandFailed(f"{argv[0]} timed out after {timeout:.0f} s") from None
        measured = json.loads(report.read() or "{}")
    stderr = done.stderr.decode(errors="replace")
    code = int(measured.get("returncode", done.returncode))
    if code not in ok or not measured:
        raise CommandFailed(f"{' '.join(argv[:3])} ... exited {code}:\n{stderr[-3000:]}")
    return Run(measured["seconds"], measured["maxrss_kib"] / 1024, code, done.stdout.decode(errors="replace"), stderr)


def _launch(out: str, argv: list[str]) -> int:
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - replaced by the command
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    with open(out, "w") as f:
        json.dump({"seconds": seconds, "maxrss_kib": usage.ru_maxrss, "returncode": code}, f)
    return 0


if __name__ == "__main__":
    sys.exit(_launch(sys.argv[1], sys.argv[3:]))
