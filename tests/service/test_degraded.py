"""Degrade, don't fail: `pixel serve` while S3 is down, on a SeaweedFS of the test's own that is stopped mid-test
and started again (and then SIGSTOPped: connections accepted, never answered). What is on disk is still served
(marked as not observed), mutations answer 503, and the service is live again once a probe succeeds: the probe's
backoff runs on an injected clock, never a sleep; a probe that gets no answer ends at its deadline."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.dev.live_server import LiveServer
from reconciler.dev.seaweed import SeaweedServer
from reconciler.dev.tinyjpeg import tiny_jpeg
from reconciler.service.app import create_app
from reconciler.service.health import BACKOFF, Health
from tests.service.conftest import AUTH, TOKEN, World, serving
from tests.service.openapi_check import checked_client
from tests.service.test_status_page import ARTIFACTS, browse, chromium  # noqa: F401 - chromium is a fixture
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

A42 = "0042_european_30_male"
HEADER = "x-pixel-observed"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Clock:
    """The health checks' monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def local_files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def readable(server: SeaweedServer, bucket: str, key: str) -> bool:
    try:
        server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError):
        return False
    return True


@pytest.fixture(scope="module")
def _stoppable() -> Iterator[SeaweedServer]:
    with SeaweedServer() as server:
        yield server


@pytest.fixture
def own_seaweed(_stoppable: SeaweedServer) -> SeaweedServer:
    """A server these tests may stop (the session's is shared by every other test), one for the module: each test
    serves a world in buckets of its own and starts it again before it ends; one that failed while it was
    stopped leaves it stopped, so each test starts with it running."""
    if not _stoppable.running:
        _stoppable.resume()
    return _stoppable


@pytest.mark.slow
def test_serve_answers_from_disk_while_s3_is_down_and_is_live_again_once_it_is_back(
    tmp_path: Path, own_seaweed: SeaweedServer
) -> None:
    clock = Clock()
    with serving(tmp_path, own_seaweed, "degraded", health=Health(clock=clock, deadline=2.0)) as world:
        http = world.http
        seed_doc = http.get("/api/actors/42/training-data")
        assert seed_doc.status_code == 200 and HEADER not in seed_doc.headers
        live_status = http.get("/api/status").json()
        assert set(live_status["tiers"]) == {"raw", "processed", "acquired", "actors"}
        final = http.get("/api/final-dataset").json()
        files_before = local_files(world.demo.root)

        own_seaweed.halt()

        # /api/status: which stores are down, since when, why; nothing observed.
        status = http.get("/api/status")
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["observed"] is False and body["degraded"] is True
        assert set(body["stores"]) == {"pixel-data", "story-boards-assets"}
        for store in body["stores"].values():
            assert store["reachable"] is False and ISO.match(store["since"]), store
            assert store["reason"], store
        assert "tiers" not in body

        # The seed's document, byte for byte as before, from the manifest; the header says S3 was not observed.
        for path in ("/api/actors/42/training-data", "/api/actors/0042/training-data?refresh=true"):
            doc = http.get(path)
            assert doc.status_code == 200, doc.text
            assert doc.headers[HEADER] == "manifest-only; s3=unreachable"
            assert doc.content == seed_doc.content
        only_in_s3 = http.get("/api/actors/21/training-data")  # no local directory: found by its manifest
        assert only_in_s3.status_code == 200 and only_in_s3.json()["s3_only_count"] == 5
        actors = http.get("/api/actors")
        assert actors.status_code == 200 and actors.headers[HEADER] == "manifest-only; s3=unreachable"
        assert [a["actor_id"] for a in actors.json()["actors"]] == [7, 13, 21, 42]
        datasets = http.get("/api/datasets")
        assert datasets.status_code == 200 and {d["state"] for d in datasets.json()["datasets"]} == {"unknown"}
        assert datasets.json()["registry"] is not None
        local_final = http.get("/api/final-dataset")
        assert local_final.status_code == 200 and local_final.headers[HEADER] == "manifest-only; s3=unreachable"
        assert local_final.json() == final

        # Mutations: 503 with the reason, and nothing written or removed.
        upload = http.post(
            "/api/actors/7/training-images",
            files=[("files", ("a.jpg", tiny_jpeg(60, "during the outage"), "image/jpeg"))],
            headers=AUTH,
        )
        delete = http.delete(f"/api/actors/42/training-images/{A42}_8.jpg", headers=AUTH)
        for response in (upload, delete):
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error.startswith("S3 is unreachable: ") and "nothing was changed" in error, error
            assert "since" in error and response.headers["retry-after"] == str(int(BACKOFF[0]))
        assert local_files(world.demo.root) == files_before

        # An actor with no manifest is not auto-initialised blind: 503 saying S3 is unreachable, nothing written.
        manifest = world.demo.manifest("0007")
        kept = manifest.read_bytes()
        manifest.unlink()
        blind = http.get("/api/actors/7/training-data")
        assert blind.status_code == 503 and blind.json()["error"].startswith("S3 is unreachable: "), blind.text
        assert not manifest.exists()
        manifest.write_bytes(kept)

        assert 'id="degraded"' in http.get("/").text
        own_seaweed.resume()
        wait_for(
            lambda: readable(own_seaweed, world.demo.data_bucket, "final_dataset/manifest.json"),
            "serving its data again (SeaweedFS)",
        )

        # Back, but the next probe is not due: still answered from disk (no probe per request).
        assert http.get("/api/status").json()["observed"] is False
        assert HEADER in http.get("/api/actors/42/training-data").headers
        clock.now += BACKOFF[0]
        back = http.get("/api/status")
        assert back.status_code == 200 and HEADER not in back.headers
        assert set(back.json()["tiers"]) == {"raw", "processed", "acquired", "actors"}
        again = http.get("/api/actors/42/training-data")
        assert again.content == seed_doc.content and HEADER not in again.headers
        page = http.get("/").text
        assert 'id="degraded"' not in page
        assert http.get("/api/actors/42/training-data?refresh=true").json() == json.loads(seed_doc.content)

        # A server that accepts connections but never answers (stopped, not gone): the probe's deadline ends it.
        os.killpg(own_seaweed.pid, signal.SIGSTOP)
        try:
            hung = http.get("/api/status").json()
            assert hung["observed"] is False
            assert {s["reason"] for s in hung["stores"].values()} == {
                f'store "{name}": no answer within 2 s' for name in ("pixel-data", "story-boards-assets")
            }
            assert http.get("/api/actors/42/training-data").headers[HEADER] == "manifest-only; s3=unreachable"
        finally:
            os.killpg(own_seaweed.pid, signal.SIGCONT)
        clock.now += BACKOFF[0]
        assert "tiers" in http.get("/api/status").json()


@pytest.mark.slow
def test_the_status_page_shows_since_when_s3_is_unreachable_in_a_real_browser(
    tmp_path: Path, own_seaweed: SeaweedServer, chromium: str  # noqa: F811 - the fixture imported above
) -> None:
    with serving(tmp_path, own_seaweed, "degraded-page", health=Health(clock=Clock())) as world:
        own_seaweed.halt()
        try:
            # The page, in a real browser: a banner saying since when, the actors from their manifests.
            # The DOM and a screenshot from one browser run (a chromium start costs a second or two).
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "status-page-degraded.png"
            shot.unlink(missing_ok=True)
            dom = browse(chromium, tmp_path / "profile", "--dump-dom", f"--screenshot={shot}", "--window-size=1280,900",
                         world.server.url + "/").stdout
            banner = re.search(r'<div class="card bad" id="degraded" role="alert">(.*?)</div>\s*</div>', dom, re.S)
            assert banner is not None, dom[:2000]
            assert re.search(r"S3 unreachable since \d{4}-\d\d-\d\dT[\d:.]+Z", banner.group(1))
            assert "pixel-data" in banner.group(1) and "story-boards-assets" in banner.group(1)
            assert re.search(r'<tr id="actor-0042">.*?href="/api/actors/0042/training-data"', dom, re.S)
            assert shot.stat().st_size > 10_000
        finally:
            own_seaweed.resume()  # the fixture's buckets are removed from a running server


def test_serve_starts_without_credentials_and_says_which_stores_it_cannot_use(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    app = create_app(world.demo.specs, token=TOKEN, status_ttl=0, health=Health(clock=Clock()))
    with LiveServer(app) as server, checked_client(app.openapi(), server.url, timeout=60) as http:
        doc = http.get("/api/actors/13/training-data")
        status: dict[str, Any] = http.get("/api/status").json()
        upload = http.post(
            "/api/actors/7/training-images",
            files=[("files", ("a.jpg", tiny_jpeg(61, "no credentials"), "image/jpeg"))],
            headers=AUTH,
        )
    assert doc.status_code == 200 and doc.headers[HEADER] == "manifest-only; s3=unreachable"
    assert doc.json() == world.http.get("/api/actors/13/training-data").json()
    assert status["observed"] is False
    for store in status["stores"].values():
        assert store["reachable"] is False and "credential" in store["reason"].lower(), store
    assert upload.status_code == 503 and "S3 is unreachable" in upload.json()["error"]
