"""The status page in a real headless browser (Debian's chromium): it renders every tier and actor of the demo,
needs no JavaScript and nothing from another host, and screenshots at desktop and phone width are kept as
test artefacts (build/test-artifacts/, or $PIXEL_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.service.conftest import World

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("PIXEL_TEST_ARTIFACTS") or REPO / "build" / "test-artifacts")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (apt-get install -y chromium; .ci/run installs it)"
        if in_ci():
            pytest.fail(message, pytrace=False)  # CI must run this test, never skip it
        pytest.skip(message)
    return found


def browse(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_status_page_renders_every_tier_and_actor_in_a_real_browser(
    world: World, chromium: str, tmp_path: Path
) -> None:
    url = world.server.url + "/"
    html = world.http.get("/").text
    assert "<script" not in html.lower()  # no JavaScript needed
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from another host (no CDN)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = {ARTIFACTS / "status-page-1280.png": "1280,900", ARTIFACTS / "status-page-phone.png": "390,1400"}
    for shot in shots:
        shot.unlink(missing_ok=True)
    # The DOM and the desktop screenshot from one browser run (a chromium start costs a second or two).
    desktop, phone = shots
    dom = browse(chromium, tmp_path / "profile", "--dump-dom", f"--screenshot={desktop}",
                 f"--window-size={shots[desktop]}", url).stdout
    browse(chromium, tmp_path / "profile-phone", f"--screenshot={phone}", f"--window-size={shots[phone]}", url)
    status = world.http.get("/api/status").json()
    for tier in ("raw", "processed", "acquired", "actors"):
        section = re.search(rf'<section class="card tier" id="tier-{tier}">(.*?)</section>', dom, re.S)
        assert section is not None, f"tier {tier} is not on the page"
        counts = status["tiers"][tier]
        for state, label in (("synced", "synced"), ("local_only", "local only"), ("s3_only", "S3 only")):
            assert f"{label}: {counts[state]['count']} (" in section.group(1), (tier, state)
    for actor_id, actor in status["actors"].items():
        row = re.search(rf'<tr id="actor-{actor_id}">(.*?)</tr>', dom, re.S)
        assert row is not None, f"actor {actor_id} is not on the page"
        assert f'href="/api/actors/{actor_id}/training-data"' in row.group(1)
        assert actor["name"] in row.group(1)
    assert 'id="datasets"' in dom and "clinical_cot" in dom
    assert "orphan" in dom and "response.json" in dom  # the demo's orphan is a finding
    assert re.search(r'Last apply: <strong id="last-apply">\d{4}-\d\d-\d\dT[\d:.]+Z</strong>', dom)  # the fixture's

    for shot, size in shots.items():
        assert shot.stat().st_size > 10_000, f"{shot} is suspiciously small"
        assert png_size(shot) == tuple(int(n) for n in size.split(","))
