"""/openapi.json as a generated client reads it: bearer auth on the mutations only, the 400 error the service really
sends (not FastAPI's 422), 304 and ETag, real schemas for every JSON answer; and the check every service test's
answers go through (tests/service/openapi_check.py) catches a service that drifts from it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.service.conftest import AUTH, World
from tests.service.openapi_check import OpenAPIConformance

pytestmark = pytest.mark.integration

MUTATIONS = {
    ("post", "/api/actors/{actor_id}/training-images"),
    ("delete", "/api/actors/{actor_id}/training-images/{filename}"),
    ("post", "/api/actors/{actor_id}/training-images/{filename}/include"),
}


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): op for path, ops in spec["paths"].items() for method, op in ops.items()}


@pytest.fixture(scope="module")
def spec(world: World) -> dict[str, Any]:
    found: dict[str, Any] = world.http.get("/openapi.json").json()
    return found


def test_bearer_auth_is_declared_on_the_mutating_routes_only(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert [(s["type"], s["scheme"]) for s in schemes.values()] == [("http", "bearer")]
    (name,) = schemes
    for key, op in operations(spec).items():
        assert op.get("security") == ([{name: []}] if key in MUTATIONS else None), key


def test_get_routes_list_no_auth_or_upload_errors_and_no_route_documents_422(spec: dict[str, Any]) -> None:
    for (method, path), op in operations(spec).items():
        assert "422" not in op["responses"], (method, path)
        if method == "get":
            assert not {"401", "403", "413", "415"} & set(op["responses"]), (path, sorted(op["responses"]))
    assert not {"HTTPValidationError", "ValidationError"} & set(spec["components"]["schemas"])


def test_a_bad_parameter_is_the_documented_400_error_body(world: World, spec: dict[str, Any]) -> None:
    op = spec["paths"]["/api/actors/{actor_id}/training-data"]["get"]
    documented = op["responses"]["400"]["content"]["application/json"]["schema"]
    assert documented == {"$ref": "#/components/schemas/ErrorBody"}
    answer = world.http.get("/api/actors/42/training-data", params={"refresh": "maybe"})  # checked by the hook too
    assert answer.status_code == 400 and set(answer.json()) == {"error", "status"}


def test_every_get_documents_etag_if_none_match_and_304(spec: dict[str, Any]) -> None:
    for (method, path), op in operations(spec).items():
        if method != "get":
            continue
        assert "ETag" in op["responses"]["200"]["headers"], path
        assert "ETag" in op["responses"]["304"]["headers"] and "content" not in op["responses"]["304"], path
        assert any(p["name"] == "If-None-Match" and p["in"] == "header" for p in op["parameters"]), path


def test_status_and_final_dataset_answers_have_schemas(world: World, spec: dict[str, Any]) -> None:
    def schema_of(path: str) -> dict[str, Any]:
        found: dict[str, Any] = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        return found

    refs = {one["$ref"].rsplit("/", 1)[1] for one in schema_of("/api/status")["anyOf"]}
    assert refs == {"StatusDocument", "DegradedStatus"}
    assert schema_of("/api/final-dataset") == {"$ref": "#/components/schemas/FinalDatasetManifest"}
    # Answered and held to those schemas by the client's hook (a drift fails there, not silently).
    assert world.http.get("/api/status").json()["actors"]["0042"]["name"]
    assert world.http.get("/api/final-dataset").json()["format"] == "pixel-final-dataset"


def _answer(
    method: str, path: str, status: int, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    kind = {"content-type": "application/json"} if body is not None else {}
    return httpx.Response(
        status, content=content, headers={**kind, **(headers or {})}, request=httpx.Request(method, "http://x" + path)
    )


def test_the_check_rejects_answers_the_schema_does_not_declare(world: World, spec: dict[str, Any]) -> None:
    check = OpenAPIConformance(spec).check
    real = world.http.get("/api/actors/42/training-data")
    check(real)  # the service's own answer passes
    etag = {"ETag": real.headers["ETag"]}
    document = real.json()
    drifted = [
        _answer("GET", "/api/actors/42/training-data", 200, {**document, "actor_id": "42"}, etag),  # a type
        _answer("GET", "/api/actors/42/training-data", 200, {**document, "extra": 1}, etag),  # an undeclared field
        _answer("GET", "/api/actors/42/training-data", 422, {"detail": []}, etag),  # an undeclared status
        _answer("GET", "/api/actors/42/training-data", 200, document, {**etag, "X-Pixel-Upload": "x"}),  # a header
        _answer("GET", "/api/actors/42/training-data", 304),  # a 304 without its ETag
        _answer("GET", "/api/actors/42/training-data", 304, document, etag),  # a 304 with a body
        _answer("GET", "/api/status", 200, {"tiers": {}}, etag),  # a status document missing its counts
        _answer("DELETE", "/api/actors/42/training-images/a.jpg", 415, {"error": "e", "status": 415}, etag),
    ]
    for answer in drifted:
        with pytest.raises(AssertionError):
            check(answer)


def test_a_mutation_answer_is_held_to_the_schema_too(world: World) -> None:
    """Through the checked client: a 404 delete (nothing to change) with its documented error body and headers."""
    answer = world.http.delete("/api/actors/42/training-images/0042_european_30_male_99.jpg", headers=AUTH)
    assert answer.status_code == 404 and answer.headers["ETag"]


def test_the_delete_route_documents_that_s3_is_kept_and_how_the_exclusion_is_lifted(spec: dict[str, Any]) -> None:
    """Seed 004 names no HTTP path for its delete: the OpenAPI says what `delete_from_s3` keeps and undoes."""
    op = operations(spec)[("delete", "/api/actors/{actor_id}/training-images/{filename}")]
    [param] = [p for p in op["parameters"] if p["name"] == "delete_from_s3"]
    described = param["description"]
    assert "excluded from the manifest (kept in S3)" in described
    assert "/include" in described and "lift any exclusion" in described
    assert ("post", "/api/actors/{actor_id}/training-images/{filename}/include") in operations(spec)
