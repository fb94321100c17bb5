"""The status page: one snapshot as HTML (the degraded banner while S3 is unreachable)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from reconciler.service.deps import ServiceDep
from reconciler.service.page import degraded_context, page_context
from reconciler.service.state import Unreachable

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parents[1] / "templates"))

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def status_page(request: Request, service: ServiceDep) -> Response:
    try:
        context = page_context(service.snapshot())
    except Unreachable:
        context = degraded_context(service)
    return TEMPLATES.TemplateResponse(request, "status.html", context)
