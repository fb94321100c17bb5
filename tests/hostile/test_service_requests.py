"""The training-data service attacked through its own routes (real uvicorn, SeaweedFS).

- A DELETE refused with 409 had already deleted the local file: under `prune: true`, with most of an actor's
  images removed locally, the targeted apply's mass-delete guard refused only after the unlink. Every guard
  now runs on the plan the delete would make before anything is touched.
- A PIXEL_API_TOKEN of a few characters was accepted: the guard on every S3 delete could be guessed. Under 16
  characters `pixel serve` refuses to start.
- Every `?refresh=true` ran an observation of its own, queued behind the others: unauthenticated callers could
  pile up unbounded work. Concurrent refreshes of one actor (or of the status) now wait for the one running.
  Likewise each lookup of an unknown actor id re-opened the stores (specs, a HEAD per bucket, the actor
  listings) at once; callers asking while an open runs now share the next one.
- An upload to a report-only actor (`authority: none`) answered 201 like any other, though nothing of it
  reaches S3: the answer now says so (header `X-Pixel-Upload: local-only; ...`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI

from reconciler import targets, workflow
from reconciler.dev.seaweed import SeaweedServer
from reconciler.dev.tinyjpeg import tiny_jpeg
from reconciler.service import state
from reconciler.workspace import Workspace
from tests.hostile.data_helpers import one_mapping
from tests.integration.pixelenv import PIXEL
from tests.service.conftest import AUTH, World, _pruning_actors, serving
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

A07 = "0007_asian_25_female"


@pytest.fixture
def pruning(tmp_path: Path, seaweed: SeaweedServer) -> Iterator[World]:
    with serving(tmp_path, seaweed, "hostile-prune", edit=_pruning_actors) as served:
        yield served


def test_a_delete_refused_by_the_mass_delete_guard_leaves_the_local_file(pruning: World) -> None:
    world = pruning
    directory = world.demo.root / f"data/actors/{A07}/training_data"
    for index in range(5):  # 5 of the actor's 8 images removed by hand, not applied yet
        (directory / f"{A07}_{index}.jpg").unlink()
    target = directory / f"{A07}_5.jpg"
    body = target.read_bytes()
    before = world.state()

    response = world.http.delete(
        f"/api/actors/7/training-images/{target.name}", params={"delete_from_s3": "true"}, headers=AUTH
    )

    assert response.status_code == 409, response.text
    assert target.exists() and hashlib.md5(target.read_bytes()).digest() == hashlib.md5(body).digest()
    assert world.state() == before
    error = response.json()["error"]
    assert "would delete 6 of the 8 objects" in error and "nothing was deleted" in error, error


@pytest.mark.parametrize("token", ["s3cr3t", "fifteen-chars!!", "x" * 15])
def test_a_token_shorter_than_16_characters_is_refused_at_start(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, token: str
) -> None:
    specs, _, env = one_mapping(tmp_path, seaweed, bucket, **{"from": "disk:data", "to": "s3:data/"})
    (tmp_path / "root" / "data").mkdir()
    command = [PIXEL, "serve", "--specs", str(specs), "--port", "0"]
    try:
        done = subprocess.run(
            command, env={**os.environ, **env, "PIXEL_API_TOKEN": token}, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"pixel serve started with a {len(token)}-character token: {exc.stderr!r}")
    assert done.returncode == 1, done.stderr
    assert "PIXEL_API_TOKEN" in done.stderr and "at least 16 characters" in done.stderr, done.stderr
    assert token not in done.stderr + done.stdout  # the refusal never echoes the secret


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedServer) -> Iterator[World]:
    with serving(tmp_path_factory.mktemp("refresh"), seaweed, "hostile-refresh") as world:
        yield world


@pytest.mark.parametrize(("path", "key"), [("/api/actors/13/training-data", "0013"), ("/api/status", "status")])
def test_concurrent_refreshes_wait_for_one_observation_instead_of_queueing_their_own(
    served: World, monkeypatch: pytest.MonkeyPatch, path: str, key: str
) -> None:
    service = cast(FastAPI, served.server.config.app).state.service
    real = workflow.guarded_plan
    lock = threading.Lock()
    calls = [0]
    started, release = threading.Event(), threading.Event()

    def blocked(ws: Workspace, *args: Any, **kwargs: Any) -> Any:
        with lock:
            calls[0] += 1
        started.set()
        assert release.wait(120), "the test never released the observation"
        return real(ws, *args, **kwargs)

    monkeypatch.setattr(state, "guarded_plan", blocked)
    callers = 8
    with ThreadPoolExecutor(callers) as pool:
        try:
            asked = [pool.submit(served.http.get, path, params={"refresh": "true"}) for _ in range(callers)]
            assert started.wait(60)
            # Every other caller is either waiting for that one observation, or (the bug) observing on its own.
            wait_for(lambda: calls[0] > 1 or service.refreshes.waiting(key) == callers - 1, "all callers in")
            assert calls[0] == 1, f"{calls[0]} observations ran at once for {callers} refreshes"
        finally:
            release.set()
        answers = [future.result() for future in asked]
    assert [a.status_code for a in answers] == [200] * callers
    assert len({a.content for a in answers}) == 1  # each got that observation's result
    assert calls[0] == 1
    assert served.http.get(path, params={"refresh": "true"}).status_code == 200
    assert calls[0] == 2  # a refresh after it is observed afresh: results are shared, never kept


def test_an_upload_to_a_report_only_actor_says_nothing_will_reach_s3(served: World) -> None:
    before = served.state()["objects"]
    response = served.http.post(
        "/api/actors/42/training-images",
        files=[("files", ("shot.jpg", tiny_jpeg(64, "report-only upload"), "image/jpeg"))],
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    note = response.headers.get("x-pixel-upload", "")
    assert note.startswith("local-only;") and "authority: none" in note and "nothing will reach S3" in note, note
    added = response.json()["training_images"][-1]
    assert (added["status"], added["local_exists"]) == ("local_only", True)
    assert served.state()["objects"] == before
    Path(added["local_path"]).unlink()  # the module's other tests see the actor as it was


def test_concurrent_lookups_of_unknown_actors_do_not_each_reopen_the_stores(
    served: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown id re-reads the specs and the actor directories (in S3 too); callers asking at once share one."""
    assert served.http.get("/api/actors/42/training-data").status_code == 200  # the stores opened once
    monkeypatch.setattr(state, "RELOAD_INTERVAL", -1.0)  # every unknown id may re-read: the worst case, at once
    real, find = workflow.open_stores, targets.find_actor
    lock = threading.Lock()
    calls, lookups = [0], [0]
    started, release = threading.Event(), threading.Event()

    def counted(desired: Any, actor_id: str) -> Any:
        with lock:
            lookups[0] += 1
        return find(desired, actor_id)

    def blocked(desired: Any, **kwargs: Any) -> Workspace:
        with lock:
            calls[0] += 1
        started.set()
        assert release.wait(120), "the test never released the open"
        return real(desired, **kwargs)

    monkeypatch.setattr(state, "open_stores", blocked)
    monkeypatch.setattr(state, "find_actor", counted)
    callers = 8
    with ThreadPoolExecutor(callers) as pool:
        try:
            asked = [pool.submit(served.http.get, "/api/actors/9999/training-data") for _ in range(callers)]
            assert started.wait(60)
            # Each request looks the id up twice (event loop, then thread) before it reopens the stores.
            wait_for(lambda: calls[0] > 1 or lookups[0] >= 2 * callers, "all callers in")
            assert calls[0] == 1, f"{calls[0]} opens of the stores ran at once for {callers} lookups"
        finally:
            release.set()
        answers = [future.result() for future in asked]
    assert [a.status_code for a in answers] == [404] * callers
    # The first open; at most one more for those that asked after it had begun; the rest take that one's.
    assert calls[0] <= 2
