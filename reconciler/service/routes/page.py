"""The status page: one snapshot as HTML (the degraded banner while S3 is unreachable)."""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from reconciler.service.deps import ServiceDep
from reconciler.service.page import degraded_context, page_context
from reconciler.service.state import Snapshot, Unreachable

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parents[1] / "templates"))

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def status_page(request: Request, service: ServiceDep) -> Response:
    """One snapshot's page, rendered once per snapshot (the template is the costly part of the answer); a fresh
    snapshot's page is answered on the event loop, and observing or rendering waits in a worker thread."""
    snap = service.fresh_snapshot()
    try:
        if snap is None:
            snap = await run_in_threadpool(service.snapshot)
    except Unreachable:
        context = await run_in_threadpool(degraded_context, service)
        return TEMPLATES.TemplateResponse(request, "status.html", context)
    html = await service.per_snapshot(snap, "page", functools.partial(_render, snap))
    return HTMLResponse(html)


def _render(snap: Snapshot) -> str:
    return TEMPLATES.get_template("status.html").render(page_context(snap))
