"""Helpers for tests that drive the pixel CLI against the SeaweedFS fixture."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.dev.seaweed import SeaweedServer

PIXEL = str(Path(sys.executable).with_name("pixel"))


@dataclass
class Run:
    code: int
    out: str
    err: str
    max_rss_kib: int = 0


def write_specs(
    spec_dir: Path,
    *,
    endpoint: str,
    bucket: str,
    root: Path,
    mappings: list[Mapping[str, object]],
    s3_extra: tuple[str, ...] = (),
) -> Path:
    spec_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "stores:",
        "  s3:",
        "    type: s3",
        f"    bucket: {bucket}",
        f"    endpoint: {endpoint}",
        "    region: us-east-1",
        "    addressing_style: path",
        "    checksum: when_required",
        *(f"    {line}" for line in s3_extra),
        "  disk:",
        "    type: local",
        f"    root: {root}",
        "mappings:",
    ]
    for m in mappings:
        first = True
        for key, value in m.items():
            rendered = str(value).lower() if isinstance(value, bool) else value
            lines.append(f"  {'- ' if first else '  '}{key}: {rendered}")
            first = False
    (spec_dir / "specs.yaml").write_text("\n".join(lines) + "\n")
    return spec_dir


def pixel(args: list[str], env: Mapping[str, str], *, cwd: Path | None = None, stdin: str = "") -> Run:
    """Run the real console script in a child process and record its peak RSS."""
    full_env = {**os.environ, **env, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [PIXEL, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd=cwd,
        text=True,
    )
    out, err = proc.communicate(stdin, timeout=300)
    return Run(proc.returncode, out, err)


# The child reports its own peak RSS (VmHWM) on exit. wait4's ru_maxrss cannot be used: Linux
# carries the parent's high-water mark into a (v)forked child across exec, so it reads as the
# test process's own RSS whenever that is larger.
_HWM_MARK = "PIXEL_TEST_VMHWM_KIB="
_HWM_WRAPPER = f"""
import atexit, sys
def _report():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                sys.stderr.write("\\n{_HWM_MARK}" + line.split()[1] + "\\n")
atexit.register(_report)
from reconciler.cli import main
sys.argv[0] = "pixel"
main()
"""


def pixel_rss(args: list[str], env: Mapping[str, str]) -> Run:
    """Like pixel() but also returns the child's own peak RSS in KiB."""
    full_env = {**os.environ, **env, "NO_COLOR": "1"}
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen([sys.executable, "-c", _HWM_WRAPPER, *args], stdin=subprocess.DEVNULL,
                                stdout=devnull, stderr=subprocess.PIPE, env=full_env)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        proc.wait()
    lines = err.splitlines()
    peaks = [int(line[len(_HWM_MARK):]) for line in lines if line.startswith(_HWM_MARK)]
    err = "\n".join(line for line in lines if not line.startswith(_HWM_MARK))
    assert peaks, f"the pixel child did not report its peak RSS: {err}"
    return Run(proc.returncode, "", err, peaks[-1])


def push_world(seaweed: SeaweedServer, bucket: str, tmp_path: Path, files: int) -> tuple[Path, dict[str, str]]:
    """`files` small JSON Lines files in three folders, one pushing mapping that prunes, and the environment of a
    child `python` that sees this interpreter's packages, a cache of its own and no ~/.aws of the developer's."""
    root = tmp_path / "data"
    for i in range(files):
        (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 3}" / f"f{i}.jsonl").write_text(f'{{"i": {i}}}\n')
    specs = write_specs(
        tmp_path / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[{"name": "m", "from": "'disk:'", "to": "'s3:data/'", "authority": "local", "prune": True}],
    )
    home = tmp_path / "home"
    home.mkdir()
    env = seaweed.child_env(
        {"PIXEL_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(home), "NO_COLOR": "1",
         "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    return specs, env
