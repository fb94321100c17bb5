"""Bad requests: each one clear 4xx JSON error, and nothing changed (every local file and every S3 object as before)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.apply.lock import LockInfo
from reconciler.dev.live_server import LiveServer
from reconciler.dev.seaweed import SeaweedServer
from reconciler.dev.tinyjpeg import tiny_jpeg
from reconciler.service.app import create_app
from tests.service.conftest import AUTH, World, serving
from tests.service.openapi_check import checked_client

pytestmark = pytest.mark.integration

LIMIT = 20_000
JPEG = tiny_jpeg(128, "bad-input test")
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
A42 = "0042_european_30_male"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedServer) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("bad")
    with serving(tmp, seaweed, "svc-bad", max_image_bytes=LIMIT, lock_timeout=0.5) as served:
        yield served


def files(*bodies: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f"upload{i}.jpg", body, "image/jpeg")) for i, body in enumerate(bodies)]


# (name, method, path, request keyword arguments, expected status, words the error must contain)
CASES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("non-numeric id", "GET", "/api/actors/abc/training-data", {}, 400, "must be a number"),
    ("negative id", "GET", "/api/actors/-42/training-data", {}, 400, "must be a number"),
    ("decimal id", "GET", "/api/actors/42.0/training-data", {}, 400, "must be a number"),
    ("absurdly long id", "GET", "/api/actors/" + "4" * 40 + "/training-data", {}, 400, "must be a number"),
    ("unicode digits", "GET", "/api/actors/%D9%A4%D9%A2/training-data", {}, 400, "must be a number"),
    ("unknown actor", "GET", "/api/actors/9999/training-data", {}, 404, "no actor 9999"),
    ("bad refresh flag", "GET", "/api/actors/42/training-data?refresh=maybe", {}, 400, "refresh"),
    ("unknown route", "GET", "/api/nothing-here", {}, 404, "Not Found"),
    ("upload without a token", "POST", "/api/actors/7/training-images", {"files": files(JPEG)}, 401, "Bearer"),
    (
        "upload with a wrong token",
        "POST",
        "/api/actors/7/training-images",
        {"files": files(JPEG), "headers": {"Authorization": "Bearer not-the-token"}},
        403,
        "wrong token",
    ),
    (
        "upload with basic auth",
        "POST",
        "/api/actors/7/training-images",
        {"files": files(JPEG), "headers": {"Authorization": "Basic dXNlcjpwdw=="}},
        401,
        "Bearer",
    ),
    ("delete without a token", "DELETE", f"/api/actors/42/training-images/{A42}_8.jpg", {}, 401, "Bearer"),
    (
        "delete with a wrong token",
        "DELETE",
        f"/api/actors/42/training-images/{A42}_8.jpg",
        {"headers": {"Authorization": "Bearer x"}},
        403,
        "wrong token",
    ),
    ("a PNG", "POST", "/api/actors/7/training-images", {"files": files(PNG), "headers": AUTH}, 415, "not a JPEG"),
    ("an empty body", "POST", "/api/actors/7/training-images", {"files": files(b""), "headers": AUTH}, 415, "JPEG"),
    (
        "a truncated JPEG",
        "POST",
        "/api/actors/7/training-images",
        {"files": files(JPEG[: len(JPEG) // 2]), "headers": AUTH},
        415,
        "truncated",
    ),
    (
        "an oversized JPEG",
        "POST",
        "/api/actors/7/training-images",
        {"files": files(JPEG[:-2] + b"\0" * LIMIT + b"\xff\xd9"), "headers": AUTH},
        413,
        "more than the limit",
    ),
    (
        "a good JPEG beside a bad one",
        "POST",
        "/api/actors/7/training-images",
        {"files": files(JPEG, PNG), "headers": AUTH},
        415,
        "upload1.jpg: not a JPEG",
    ),
    (
        "too many files",
        "POST",
        "/api/actors/7/training-images",
        {"files": files(*[JPEG] * 21), "headers": AUTH},
        400,
        "at most 20",
    ),
    (
        "no files field",
        "POST",
        "/api/actors/7/training-images",
        {"data": {"note": "hi"}, "files": [("other", ("a.jpg", JPEG, "image/jpeg"))], "headers": AUTH},
        400,
        "no images",
    ),
    (
        "files as a text field",
        "POST",
        "/api/actors/7/training-images",
        {"data": {"files": "not a file"}, "files": [("x", ("a.jpg", JPEG, "image/jpeg"))], "headers": AUTH},
        400,
        "file uploads",
    ),
    ("a JSON body", "POST", "/api/actors/7/training-images", {"json": {"a": 1}, "headers": AUTH}, 415, "multipart"),
    ("upload to an unknown actor", "POST", "/api/actors/9999/training-images", {"files": files(JPEG), "headers": AUTH},
     404, "no actor 9999"),
    ("upload to a non-numeric id", "POST", "/api/actors/x7/training-images", {"files": files(JPEG), "headers": AUTH},
     400, "must be a number"),
    ("traversal in a filename", "DELETE", "/api/actors/42/training-images/..%5C..%5Csecret.jpg", {"headers": AUTH},
     400, "invalid image filename"),
    ("dot-dot filename", "DELETE", f"/api/actors/42/training-images/{A42}_1.jpg..", {"headers": AUTH}, 400,
     "invalid image filename"),
    ("encoded slash", "DELETE", f"/api/actors/42/training-images/..%2F..%2F{A42}_1.jpg", {"headers": AUTH}, 404, ""),
    ("NUL in a filename", "DELETE", f"/api/actors/42/training-images/{A42}_1%00.jpg", {"headers": AUTH}, 400,
     "invalid image filename"),
    ("another actor's image", "DELETE", "/api/actors/42/training-images/0007_asian_25_female_1.jpg",
     {"headers": AUTH}, 400, "not one of actor 0042's image names"),
    ("the orphan response.json", "DELETE", "/api/actors/42/training-images/response.json", {"headers": AUTH}, 400,
     "not one of actor 0042's image names"),
    ("an image that is nowhere", "DELETE", f"/api/actors/42/training-images/{A42}_99.jpg", {"headers": AUTH}, 404,
     "has no image"),
    (
        "delete in a shared tier",
        "DELETE",
        "/api/actors/13/training-images/0013_african_40_male_0.jpg",
        {"headers": AUTH, "params": {"delete_from_s3": "true"}},
        409,
        "S3 deletes are not allowed for actor 0013",
    ),
    (
        "delete where the authority is none",
        "DELETE",
        f"/api/actors/42/training-images/{A42}_0.jpg",
        {"headers": AUTH, "params": {"delete_from_s3": "true"}},
        409,
        "authority is none",
    ),
]


@pytest.mark.parametrize(("name", "method", "path", "kwargs", "status", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_request_gets_one_clear_error_and_changes_nothing(
    small: World, name: str, method: str, path: str, kwargs: dict[str, Any], status: int, words: str
) -> None:
    before = small.state()
    response = small.http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "status"} and body["status"] == status
    assert words in body["error"], body["error"]
    assert "test-token" not in response.text  # never echo a secret
    assert small.state() == before, f"{name} changed something"


def test_the_shared_tier_refusal_names_the_rule(small: World) -> None:
    response = small.http.delete(
        "/api/actors/13/training-images/0013_african_40_male_0.jpg", params={"delete_from_s3": "true"}, headers=AUTH
    )
    assert "tier 'actors' is shared (ownership: shared)" in response.json()["error"]
    assert "nothing was deleted" in response.json()["error"]


def test_mutations_are_off_without_a_token_and_say_how_to_enable_them(small: World) -> None:
    app = create_app(small.demo.specs, token=None)
    before = small.state()
    with LiveServer(app) as server, checked_client(app.openapi(), server.url, timeout=60) as http:
        upload = http.post("/api/actors/7/training-images", files=files(JPEG), headers=AUTH)
        delete = http.delete(f"/api/actors/42/training-images/{A42}_8.jpg", headers=AUTH)
        read = http.get("/api/actors/7/training-data")
    for response in (upload, delete):
        assert response.status_code == 403
        assert "PIXEL_API_TOKEN" in response.json()["error"] and "Authorization: Bearer" in response.json()["error"]
    assert read.status_code == 200
    assert small.state() == before


def test_a_mutation_while_another_apply_holds_the_lock_is_409_and_changes_nothing(small: World) -> None:
    now = time.time()
    holder = LockInfo(id="e" * 32, host="ci-runner", pid=7, started=now, renewed=now, lease_seconds=600)
    small.demo.client.put_object(Bucket=small.demo.actor_bucket, Key=".pixel/lock", Body=holder.to_json())
    try:
        before = small.state()
        response = small.http.post("/api/actors/7/training-images", files=files(JPEG), headers=AUTH)
        assert response.status_code == 409
        assert f"is locked by apply {'e' * 32} (host ci-runner" in response.json()["error"]
        assert small.state() == before
    finally:
        small.demo.client.delete_object(Bucket=small.demo.actor_bucket, Key=".pixel/lock")
