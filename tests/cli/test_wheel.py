"""pixel as another repository's CI installs it: a wheel built from the checkout, installed into a fresh venv
outside it, runs `validate`, `plan` (against SeaweedFS) and `serve` (its status page from the packaged template).

The wheel once left `schemas/` behind and failed on the first command. The build takes its setuptools from
the configured package index, as `pip install git+URL` does; only pixel itself is installed (`--no-index`),
and the venv sees the dev venv's site-packages for the dependencies through a plain .pth line, so the dev
venv's editable pixel (itself a .pth) is not picked up: the test checks where `reconciler` was imported from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.pixelenv import write_specs

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # the pytest-level guard on each child: a hang fails the test instead of stalling the suite


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)


def checkout_copy(dest: Path) -> Path:
    """The files `pip install git+URL` would see: tracked and new ones, as they are in the working tree."""
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO, check=True)
    for name in filter(None, listed.stdout.split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("wheel")
    source = checkout_copy(tmp / "src")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(source)])
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("pixel_reconciler-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (purelib / "pixel-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q"]
    done = run([*pip, str(wheel)])
    assert done.returncode == 0, done.stderr
    work = tmp / "elsewhere"  # outside the checkout: nothing can be read from it by relative path
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIXEL_ENV_FILE")}
    env["NO_COLOR"] = "1"
    where = run([str(python), "-c", "import reconciler; print(reconciler.__file__)"], cwd=work, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr
    return {"pixel": str(venv / "bin" / "pixel"), "work": work, "env": env}


@pytest.fixture
def specs(installed: dict[str, Any], seaweed: Any, bucket: str) -> Path:
    work = installed["work"]
    root = work / f"data-{bucket}"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "a.jsonl").write_bytes(b'{"id": "a"}\n')
    return write_specs(
        work / f"specs-{bucket}",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:datasets/raw/"}],
    )


def test_the_installed_wheel_validates_and_plans(installed: dict[str, Any], specs: Path, seaweed: Any) -> None:
    env = {**installed["env"], **seaweed.env()}
    validated = run([installed["pixel"], "validate", "--specs", str(specs)], cwd=installed["work"], env=env)
    assert validated.returncode == 0, validated.stderr
    assert "are valid" in validated.stdout
    planned = run([installed["pixel"], "plan", "--specs", str(specs)], cwd=installed["work"], env=env)
    assert planned.returncode == 0, planned.stderr
    assert "+ datasets/raw/a.jsonl" in planned.stdout


def test_the_installed_wheel_serves_its_status_page(installed: dict[str, Any], specs: Path, seaweed: Any) -> None:
    env = {**installed["env"], **seaweed.env()}
    with subprocess.Popen(
        [installed["pixel"], "serve", "--specs", str(specs), "--port", "0"],
        cwd=installed["work"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            assert server.stderr is not None
            # The line it prints once the port is bound: read, not waited for by time.
            line = server.stderr.readline()
            assert line.startswith("pixel serve: http://127.0.0.1:"), line
            url = line.split()[2]
            # The port is bound before that line and listened on just after it: a refused connect is retried.
            with httpx.Client(transport=httpx.HTTPTransport(retries=8), timeout=60) as client:
                page = client.get(url)
                assert page.status_code == 200 and "<html" in page.text.lower()  # the packaged template
                assert client.get(url + "api/actors").status_code == 200
        finally:
            server.terminate()
            server.wait(timeout=TIMEOUT)
