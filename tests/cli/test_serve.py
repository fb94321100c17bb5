"""`pixel serve`'s own errors: one clear message and exit 1 before anything is served."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.integration.pixelenv import pixel

REPO = Path(__file__).resolve().parents[2]


def test_a_port_in_use_is_one_error_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = pixel(["serve", "--specs", str(REPO / "specs"), "--port", str(port)], {})
    assert run.code == 1
    assert run.err.strip().splitlines()[-1] == f"Error: cannot serve on 127.0.0.1:{port}: Address already in use"


def test_bad_specs_are_reported_before_a_port_is_bound(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("stores: [\n")
    run = pixel(["serve", "--specs", str(tmp_path), "--port", "0"], {})
    assert run.code == 1
    assert "problem in the specs" in run.err and "pixel serve:" not in run.err
