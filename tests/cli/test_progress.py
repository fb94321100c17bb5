"""Progress bars: live on a terminal (a real pty), absent in CI and in pipes."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pixelenv import PIXEL, pixel_in_process, write_specs

pytestmark = pytest.mark.integration


def run_in_pty(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run pixel with stdin, stdout and stderr on a pseudo-terminal; return its exit code and all it wrote."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([PIXEL, *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError("pixel wrote nothing for too long: " + b"".join(chunks).decode(errors="replace"))
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(timeout=timeout), b"".join(chunks).decode(errors="replace")


@pytest.fixture
def small(tmp_path: Path, seaweed: Any, bucket: str) -> dict[str, Any]:
    root = tmp_path / "data"
    (root / "raw" / "cot").mkdir(parents=True)
    for i in range(5):
        (root / "raw" / "cot" / f"s{i}.jsonl").write_bytes(b'{"i": %d}\n' % i * (200 * (i + 1)))
    specs = write_specs(
        tmp_path / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/", "prune": True}],
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR")}
    env.update(seaweed.env())
    env["PIXEL_CACHE_DIR"] = str(tmp_path / "cache")
    return {"root": root, "specs": specs, "env": env}


def test_apply_on_a_terminal_shows_a_live_progress_bar(small: dict[str, Any]) -> None:
    code, out = run_in_pty(["apply", "--auto-approve", "--specs", str(small["specs"])], small["env"])
    assert code == 0, out
    # Redrawn in place (carriage return + erase line), with a bar, counts, bytes and a rate.
    assert "\r\x1b[Kapplying" in out
    final = out.split("\r\x1b[K")[-1].splitlines()[0]
    assert final.startswith("applying    [########################]  5/5 objects"), final
    assert "KiB/" in final and "/s" in final
    assert "\r\x1b[Kobserving" in out
    assert "Apply complete! 5 done" in out


def test_with_ci_true_and_a_pipe_no_progress_is_printed(small: dict[str, Any]) -> None:
    env = {**small["env"], "CI": "true"}
    result = pixel_in_process(["apply", "--auto-approve", "--specs", str(small["specs"])], env)
    assert result.code == 0, result.err
    assert "Apply complete! 5 done" in result.out
    for stream in (result.out, result.err):
        assert "\r" not in stream and "\x1b[K" not in stream
        assert "applying    [" not in stream and "observing" not in stream


def test_ci_true_silences_the_bar_even_on_a_terminal(small: dict[str, Any]) -> None:
    code, out = run_in_pty(
        ["apply", "--auto-approve", "--specs", str(small["specs"])], {**small["env"], "CI": "true"}
    )
    assert code == 0, out
    assert "Apply complete! 5 done" in out and "\x1b[K" not in out


def test_log_format_json_gives_one_event_per_action_start_and_finish(small: dict[str, Any]) -> None:
    env = {**small["env"], "CI": "true"}
    result = pixel_in_process(["apply", "--auto-approve", "--log-format", "json", "--specs", str(small["specs"])], env)
    assert result.code == 0, result.err
    events = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
    assert len(events) == len(result.err.splitlines()), "every stderr line is one JSON object"
    started = [e for e in events if e["event"] == "action started"]
    finished = [e for e in events if e["event"] == "action finished"]
    assert len(started) == len(finished) == 5
    assert {e["key"] for e in started} == {e["key"] for e in finished}
    for event in finished:
        assert event["status"] == "done" and event["retries"] == 0
        assert event["bytes"] > 0 and event["seconds"] >= 0


def test_plan_json_and_markdown_keep_stdout_one_document(small: dict[str, Any], tmp_path: Path) -> None:
    args = ["plan", "--detailed-exitcode", "--specs", str(small["specs"])]
    out = tmp_path / "plan.json"
    as_json = pixel_in_process([*args, "--format", "json", "-out", str(out)], small["env"])
    assert as_json.code == 2, as_json.err
    assert json.loads(as_json.out) == json.loads(out.read_text())  # nothing else on stdout
    assert "Saved the plan to" in as_json.err
    code, terminal = run_in_pty([*args, "--format", "json"], small["env"])
    assert code == 2 and "\x1b[K" not in terminal, "no progress bar under --format json, even on a terminal"
    as_md = pixel_in_process([*args, "--format", "markdown"], small["env"])
    assert as_md.code == 2 and as_md.out.startswith("### pixel plan: 5 to upload, 0 to update, 0 to delete")
    assert "| upload | 5 |" in as_md.out
