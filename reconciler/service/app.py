"""The FastAPI app: seed 004's training-data API, the read-only views, the token-gated mutations, the status page.

An edge like cli.py: each route (reconciler.service.routes, one router per area) parses, calls
reconciler.service.state or .mutations, and renders. The service state and settings reach routes as FastAPI
dependencies (reconciler.service.deps); the token check is a security dependency on the mutations' router.
Every JSON answer (errors too) carries a strong ETag and honours If-None-Match with 304. Mutations are off unless
PIXEL_API_TOKEN is set; then they need `Authorization: Bearer <token>` (compared in constant time).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from reconciler.apply.lock import LockHeld
from reconciler.errors import UserError
from reconciler.service import mutations
from reconciler.service.deps import Settings, token_problem
from reconciler.service.health import Health
from reconciler.service.responses import error, openapi_without_422
from reconciler.service.routes import actors, images, page, views
from reconciler.service.state import Service, ServiceError, Unreachable


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
    app = FastAPI(
        title="pixel training-data service",
        description="Seed 004's actor training-data API over pixel's manifests; mutations are a targeted apply.",
        version="1",
    )
    app.state.service = service
    app.state.settings = Settings(token=token, max_image_bytes=max_image_bytes)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if isinstance(exc, Unreachable):  # when the next probe may find S3 back
            extra = {"Retry-After": str(max(1, math.ceil(service.health.retry_in())))}
        return error(request, exc.status, exc.message, extra)

    @app.exception_handler(LockHeld)
    async def lock_held(request: Request, exc: LockHeld) -> Response:
        return error(request, 409, f"{exc}; nothing was changed, try again once that apply is done")

    @app.exception_handler(UserError)
    async def unusable(request: Request, exc: UserError) -> Response:
        return error(request, 503, f"{exc}; nothing was changed")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(request, 400, f"{where}: {first.get('msg', 'invalid request')}")

    for area in (page, actors, images, views):
        app.include_router(area.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = openapi_without_422(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to post-process the schema
    return app
