"""How the service answers: pre-rendered JSON with a strong ETag (304 on If-None-Match), errors as `ErrorBody`,
and the same answers described for OpenAPI, so a generated client knows every status and header it can get.

Routes send bytes rendered once (a document is cached by its manifest's version, so re-serialising a 500-image
document per request would cost more than serving it); `response_model` and `responses` still declare the shape
those bytes have, and tests/service validate every answer against that declaration.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from reconciler.service.models import ErrorBody
from reconciler.service.state import MANIFEST_ONLY, OBSERVED_HEADER, Rendered, Service


def etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return etag in tags


def send(request: Request, rendered: Rendered, status: int = 200) -> Response:
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
    header = request.headers.get("if-none-match")
    if status == 200 and request.method in ("GET", "HEAD") and header and etag_matches(header, rendered.etag):
        return Response(status_code=304, headers=headers)
    return Response(rendered.body, status_code=status, media_type="application/json", headers=headers)


def send_json(request: Request, document: Any, status: int = 200) -> Response:
    return send(request, Rendered.of(json.dumps(document, sort_keys=True).encode()), status)


def error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = send(request, Rendered.of(ErrorBody(error=message, status=status).model_dump_json().encode()), status)
    response.headers.update(headers or {})
    return response


def marked(service: Service, response: Response) -> Response:
    """`response`, saying in a header when it was served from disk alone (S3 unreachable: not observed)."""
    if not service.live:
        response.headers[OBSERVED_HEADER] = MANIFEST_ONLY
    return response


# --- the same, for OpenAPI ----------------------------------------------------------------------------------------

_TEXT = {"type": "string"}
ETAG_HEADERS: dict[str, Any] = {
    "ETag": {
        "description": "strong validator of this body: send it back in If-None-Match",
        "required": True,
        "schema": _TEXT,
    },
    "Cache-Control": {"description": "`no-cache`: revalidate with If-None-Match before reusing", "schema": _TEXT},
}
OBSERVED: dict[str, Any] = {
    OBSERVED_HEADER: {
        "description": f"only while S3 is unreachable: `{MANIFEST_ONLY}` (served from the manifests on disk)",
        "schema": _TEXT,
    }
}
_DESCRIPTIONS = {
    400: "Bad request: a malformed parameter or upload",
    401: "No bearer token (header WWW-Authenticate: Bearer)",
    403: "Mutations are off (no PIXEL_API_TOKEN) or the token is wrong",
    404: "No such actor, image or published document",
    409: "Another apply holds the lock, or the apply would be refused; nothing was changed",
    413: "An image or the request is larger than the limit",
    415: "Not multipart/form-data, or a file that is not a whole JPEG",
    500: "A document pixel wrote cannot be read, or a local write failed",
    502: "S3 answered with an error",
    503: "S3 is unreachable (Retry-After says when the next probe is due) or the specs cannot be used",
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": _TEXT}},
    503: {"Retry-After": {"description": "seconds until S3 is probed again", "schema": {"type": "integer"}}},
}
NOT_MODIFIED: dict[str, Any] = {"description": "Not Modified: If-None-Match named this ETag", "headers": ETAG_HEADERS}
IF_NONE_MATCH: dict[str, Any] = {
    "parameters": [
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "an ETag this client holds: 304 with no body while it is still current",
            "schema": _TEXT,
        }
    ]
}


def ok(*, observed: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The success answer's headers (its schema comes from the route's response_model)."""
    return {"headers": {**ETAG_HEADERS, **(OBSERVED if observed else {}), **(extra or {})}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": ErrorBody,
            "description": _DESCRIPTIONS[status],
            "headers": {**ETAG_HEADERS, **_ERROR_HEADERS.get(status, {})},
        }
        for status in statuses
    }


def reads(*statuses: int, observed: bool = False) -> dict[int | str, dict[str, Any]]:
    """A GET's answers: 200 (with ETag), 304, and the errors it can really return."""
    return {200: ok(observed=observed), 304: NOT_MODIFIED, **errors(*statuses)}


def openapi_without_422(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` without FastAPI's 422 HTTPValidationError: the service answers a bad parameter with 400 ErrorBody."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    return schema
