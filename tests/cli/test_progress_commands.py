"""Progress for the other long commands: `pixel verify --download` and `pixel cat` (a records bar on stderr)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
from typing import Any

import pytest

from tests.cli.test_progress import run_in_pty, small  # noqa: F401  (the fixture)
from tests.integration.pixelenv import PIXEL, pixel_in_process

pytestmark = pytest.mark.integration


def run_stderr_on_pty(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, bytes, str]:
    """stdout to a pipe (a file, `| head`), stderr on a terminal: exit code, stdout bytes, stderr text."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([PIXEL, *args], stdout=subprocess.PIPE, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    assert proc.stdout is not None
    out = proc.stdout.read()
    chunks: list[bytes] = []
    try:
        while select.select([master], [], [], timeout)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(timeout=timeout), out, b"".join(chunks).decode(errors="replace")


def test_verify_download_shows_objects_and_bytes_read(small: dict[str, Any]) -> None:  # noqa: F811
    specs = ["--specs", str(small["specs"])]
    assert pixel_in_process(["apply", "--auto-approve", *specs], small["env"]).code == 0
    # Before: a silent wait until every object had been downloaded and hashed.
    code, out = run_in_pty(["verify", "--download", *specs], small["env"])
    assert code == 0, out
    final = out.split("\r\x1b[K")[-1].splitlines()[0]
    assert final.startswith("verifying   [########################]  5/5 objects"), final
    assert "KiB" in final


def test_cat_to_a_pipe_shows_a_records_bar_on_the_terminal(small: dict[str, Any]) -> None:  # noqa: F811
    specs = ["--specs", str(small["specs"])]
    assert pixel_in_process(["apply", "--auto-approve", *specs], small["env"]).code == 0
    code, out, err = run_stderr_on_pty(["cat", "s3:datasets/raw/cot/s4.jsonl", *specs], small["env"])
    assert code == 0, err
    assert out.count(b"\n") == 1000  # the records, and nothing else, on stdout
    final = err.split("\r\x1b[K")[-1].splitlines()[0]
    assert final.startswith("reading     1,000 records"), final
    # On a terminal, stdout and the bar would share the screen: no bar.
    code, both = run_in_pty(["cat", "s3:datasets/raw/cot/s4.jsonl", *specs], small["env"])
    assert code == 0 and "\x1b[K" not in both
