"""The FastAPI app: seed 004's training-data API, the read-only views, the token-gated mutations, the status page.

An edge like cli.py: each route parses, calls reconciler.service.state or
.mutations, and renders. Every JSON answer (errors too) carries a strong ETag
and honours If-None-Match with 304. Mutations are off unless PIXEL_API_TOKEN is
set; then they need `Authorization: Bearer <token>` (compared in constant time).
"""

from __future__ import annotations

import functools
import hmac
import json
import math
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from reconciler.apply.lock import LockHeld
from reconciler.errors import UserError
from reconciler.service import mutations
from reconciler.service.documents import actor_summary
from reconciler.service.health import Health
from reconciler.service.models import ActorList, DatasetList, ErrorBody, TrainingData
from reconciler.service.page import degraded_context, page_context
from reconciler.service.state import (
    MANIFEST_ONLY,
    OBSERVED_HEADER,
    RELOAD_INTERVAL,
    Rendered,
    Service,
    ServiceError,
    Unreachable,
    dataset_entries,
    final_dataset_manifest,
    read_registry,
    unobserved_dataset_entries,
)

TEMPLATES = Path(__file__).with_name("templates")
# A bearer token guards deletes in S3: one a person can type from memory could be guessed by whoever reaches the port.
MIN_TOKEN_LENGTH = 16
TOKEN_HELP = (
    "mutations are off: start `pixel serve` with PIXEL_API_TOKEN set in its environment, "
    "then send `Authorization: Bearer <that token>`"
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 415, 502, 503)
}
_MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                }
            }
        },
    }
}


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return etag in tags


def send(request: Request, rendered: Rendered, status: int = 200) -> Response:
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
    header = request.headers.get("if-none-match")
    if status == 200 and request.method in ("GET", "HEAD") and header and _etag_matches(header, rendered.etag):
        return Response(status_code=304, headers=headers)
    return Response(rendered.body, status_code=status, media_type="application/json", headers=headers)


def send_json(request: Request, document: Any, status: int = 200) -> Response:
    return send(request, Rendered.of(json.dumps(document, sort_keys=True).encode()), status)


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = send(request, Rendered.of(ErrorBody(error=message, status=status).model_dump_json().encode()), status)
    response.headers.update(headers or {})
    return response


def token_problem(token: str | None) -> str | None:
    """Why `token` may not guard the mutations (never quoting it); None when it may, or when there is none."""
    if token is None:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        return (
            f"PIXEL_API_TOKEN is {len(token)} characters; it must be at least {MIN_TOKEN_LENGTH} characters "
            "(e.g. `openssl rand -hex 16`), or unset to keep the mutations off"
        )
    if token != token.strip():
        return "PIXEL_API_TOKEN begins or ends with whitespace, which no Authorization header can carry"
    return None


def marked(service: Service, response: Response) -> Response:
    """`response`, saying in a header when it was served from disk alone (S3 unreachable: not observed)."""
    if not service.live:
        response.headers[OBSERVED_HEADER] = MANIFEST_ONLY
    return response


def _check_token(request: Request, token: str | None) -> None:
    if not token:
        raise ServiceError(403, TOKEN_HELP)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ServiceError(401, "this route needs `Authorization: Bearer <PIXEL_API_TOKEN>`")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ServiceError(403, "wrong token: the bearer token is not the service's PIXEL_API_TOKEN")


async def _images(request: Request, limit: int) -> list[tuple[str, bytes]]:
    """The multipart `files` fields, refused early when the request is larger than any acceptable one."""
    declared = request.headers.get("content-length")
    ceiling = mutations.MAX_FILES * limit + 1024 * 1024
    if declared is not None and declared.isdigit() and int(declared) > ceiling:
        raise ServiceError(
            413, f"request body of {declared} bytes is more than {mutations.MAX_FILES} images of {limit} bytes each"
        )
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ServiceError(415, "send the images as multipart/form-data, one or more fields named 'files'")
    form = await request.form(max_files=mutations.MAX_FILES + 1, max_fields=10)
    files: list[tuple[str, bytes]] = []
    for value in form.getlist("files"):
        if not isinstance(value, UploadFile):
            raise ServiceError(400, "the 'files' fields must be file uploads, not text")
        if value.size is not None and value.size > limit:
            raise ServiceError(413, f"{value.filename}: {value.size} bytes, more than the limit of {limit} per image")
        files.append((value.filename or "", await value.read(limit + 1)))
    await form.close()
    return files


def create_app(
    specs: Path,
    *,
    token: str | None = None,
    max_image_bytes: int = mutations.DEFAULT_MAX_IMAGE_BYTES,
    status_ttl: float = 10.0,
    lock_timeout: float = 30.0,
    health: Health | None = None,
) -> FastAPI:
    """The app; `health` (which S3 stores answer, its clock and probe) is injected by tests."""
    if (problem := token_problem(token)) is not None:
        raise ValueError(problem)
    service = Service(specs, status_ttl=status_ttl, lock_timeout=lock_timeout, health=health)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    app = FastAPI(
        title="pixel training-data service",
        description="Seed 004's actor training-data API over pixel's manifests; mutations are a targeted apply.",
        version="1",
    )
    app.state.service = service

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if isinstance(exc, Unreachable):  # when the next probe may find S3 back
            extra = {"Retry-After": str(max(1, math.ceil(service.health.retry_in())))}
        return _error(request, exc.status, exc.message, extra)

    @app.exception_handler(LockHeld)
    async def lock_held(request: Request, exc: LockHeld) -> Response:
        return _error(request, 409, f"{exc}; nothing was changed, try again once that apply is done")

    @app.exception_handler(UserError)
    async def unusable(request: Request, exc: UserError) -> Response:
        return _error(request, 503, f"{exc}; nothing was changed")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(request, 400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def status_page(request: Request) -> Response:
        try:
            context = page_context(service.snapshot())
        except Unreachable:
            context = degraded_context(service)
        return templates.TemplateResponse(request, "status.html", context)

    @app.get("/api/actors", response_model=ActorList, responses=_ERRORS)
    def actors(request: Request) -> Response:
        ws = service.open() if service.recheck_due() else service.workspace(max_age=RELOAD_INTERVAL)
        listed = []
        for actor in ws.desired.actors:
            if actor.actor_id.isdigit():
                found = service.training_data(ws.desired, actor)
                listed.append(actor_summary(actor.actor_id, actor.actor_name, found[1] if found else None))
        return marked(service, send(request, Rendered.of(ActorList(actors=listed).model_dump_json().encode())))

    @app.get("/api/actors/{actor_id}/training-data", response_model=TrainingData, responses=_ERRORS)
    async def training_data(request: Request, actor_id: str, refresh: bool = False) -> Response:
        """Seed 004's document; `42` and `0042` are the same actor. `refresh=true` observes its files live.

        While S3 is unreachable: the manifest on disk, with the header `X-Pixel-Observed: manifest-only;
        s3=unreachable` (a refresh too)."""
        if service.recheck_due():
            await run_in_threadpool(service.open)
        if refresh:
            ws, actor = await run_in_threadpool(service.actor, actor_id)
            if service.live:
                live = functools.partial(service.live_training_data, ws, actor)
                try:
                    return send(request, await service.refreshes.run(actor.actor_id, live))
                except Unreachable:
                    pass  # S3 went away meanwhile: the manifest, marked, as in degraded mode
        known = service.known_actor(actor_id)
        ws, actor = known if known is not None else await run_in_threadpool(service.actor, actor_id)
        return marked(service, send(request, service.manifest_document(ws, actor)))

    @app.get("/api/status", responses=_ERRORS)
    async def status(request: Request, refresh: bool = False) -> Response:
        """The `pixel status --format json` document (observed at most status_ttl seconds ago); while S3 is
        unreachable, `{"observed": false, "degraded": true, "stores": {name: {reachable, since, reason}}}`."""
        try:
            if refresh:
                snap = await service.refreshes.run("status", functools.partial(service.snapshot, refresh=True))
            else:
                snap = await run_in_threadpool(service.snapshot)
        except Unreachable:
            return marked(service, send_json(request, await run_in_threadpool(service.degraded_status)))
        return send_json(request, snap.status)

    @app.get("/api/datasets", response_model=DatasetList, responses=_ERRORS)
    def datasets(request: Request) -> Response:
        try:
            snap = service.snapshot()
            body = DatasetList(datasets=dataset_entries(snap), registry=read_registry(snap.desired))
        except Unreachable:
            desired = service.workspace().desired
            body = DatasetList(datasets=unobserved_dataset_entries(desired), registry=read_registry(desired))
        return marked(service, send(request, Rendered.of(body.model_dump_json().encode())))

    @app.get("/api/final-dataset", responses=_ERRORS)
    def final_dataset(request: Request) -> Response:
        ws = service.open() if service.recheck_due() else service.workspace()
        return marked(service, send_json(request, final_dataset_manifest(ws)))

    @app.post(
        "/api/actors/{actor_id}/training-images",
        response_model=TrainingData,
        status_code=201,
        responses=_ERRORS,
        openapi_extra=_MULTIPART,
    )
    async def upload(request: Request, actor_id: str) -> Response:
        """Add JPEGs as {actor_name}_{next index}.jpg, then a targeted apply uploads them and rewrites the manifest."""
        _check_token(request, token)
        files = await _images(request, max_image_bytes)
        rendered, note = await run_in_threadpool(mutations.add_images, service, actor_id, files, max_image_bytes)
        response = send(request, rendered, 201)
        if note is not None:
            response.headers["X-Pixel-Upload"] = note  # the seed's document has no field for it
        return response

    @app.delete("/api/actors/{actor_id}/training-images/{filename}", response_model=TrainingData, responses=_ERRORS)
    async def delete(request: Request, actor_id: str, filename: str) -> Response:
        """Remove the local file and (where the specs let pixel delete in S3) the object; rewrite the manifest."""
        _check_token(request, token)
        return send(request, await run_in_threadpool(mutations.remove_image, service, actor_id, filename))

    return app

