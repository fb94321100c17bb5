"""Read-only views over one observation: `pixel status` as JSON, the dataset registry, the final dataset."""

from __future__ import annotations

import functools
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from reconciler.service.deps import ServiceDep
from reconciler.service.models import DatasetList, DegradedStatus, FinalDatasetManifest, StatusDocument
from reconciler.service.responses import IF_NONE_MATCH, marked, reads, send, send_json
from reconciler.service.state import (
    Rendered,
    Unreachable,
    dataset_entries,
    final_dataset_manifest,
    read_registry,
    unobserved_dataset_entries,
)

router = APIRouter(prefix="/api", tags=["views"])


@router.get(
    "/status",
    response_model=StatusDocument | DegradedStatus,
    responses=reads(400, 404, 500, 502, 503, observed=True),
    openapi_extra=IF_NONE_MATCH,
)
async def status(request: Request, service: ServiceDep, refresh: bool = False) -> Response:
    """The `pixel status --format json` document (observed at most status_ttl seconds ago); while S3 is
    unreachable, `{"observed": false, "degraded": true, "stores": {name: {reachable, since, reason}}}`."""
    try:
        if refresh:
            snap = await service.refreshes.run("status", functools.partial(service.snapshot, refresh=True))
        else:  # a fresh snapshot is answered on the loop; observing one waits in a worker thread
            fresh = service.fresh_snapshot()
            snap = fresh if fresh is not None else await run_in_threadpool(service.snapshot)
    except Unreachable:
        return marked(service, send_json(request, await run_in_threadpool(service.degraded_status)))
    return send(request, await service.per_snapshot(snap, "status", functools.partial(_rendered, snap.status)))


def _rendered(document: dict[str, Any]) -> Rendered:
    return Rendered.of(json.dumps(document, sort_keys=True).encode())


@router.get(
    "/datasets", response_model=DatasetList, responses=reads(404, 500, 502, 503, observed=True),
    openapi_extra=IF_NONE_MATCH,
)
def datasets(request: Request, service: ServiceDep) -> Response:
    try:
        snap = service.snapshot()
        body = DatasetList(datasets=dataset_entries(snap), registry=read_registry(snap.desired))
    except Unreachable:
        desired = service.workspace().desired
        body = DatasetList(datasets=unobserved_dataset_entries(desired), registry=read_registry(desired))
    return marked(service, send(request, Rendered.of(body.model_dump_json().encode())))


@router.get(
    "/final-dataset",
    response_model=FinalDatasetManifest,
    responses=reads(404, 500, 502, 503, observed=True),
    openapi_extra=IF_NONE_MATCH,
)
def final_dataset(request: Request, service: ServiceDep) -> Response:
    """The published final dataset's manifest.json, read from S3 (from the local copy while S3 is unreachable)."""
    ws = service.open() if service.recheck_due() else service.workspace()
    return marked(service, send_json(request, final_dataset_manifest(ws)))
