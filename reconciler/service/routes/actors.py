"""Seed 004's reads: the actor list and one actor's training-data document."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from reconciler.service.deps import ServiceDep
from reconciler.service.documents import actor_summary
from reconciler.service.models import ActorList, TrainingData
from reconciler.service.responses import IF_NONE_MATCH, marked, reads, send
from reconciler.service.state import RELOAD_INTERVAL, Rendered, Unreachable

router = APIRouter(prefix="/api/actors", tags=["actors"])


@router.get(
    "", response_model=ActorList, responses=reads(404, 500, 502, 503, observed=True), openapi_extra=IF_NONE_MATCH
)
def actors(request: Request, service: ServiceDep) -> Response:
    ws = service.open() if service.recheck_due() else service.workspace(max_age=RELOAD_INTERVAL)
    listed = []
    for actor in ws.desired.actors:
        if actor.actor_id.isdigit():
            found = service.training_data(ws.desired, actor)
            listed.append(actor_summary(actor.actor_id, actor.actor_name, found[1] if found else None))
    return marked(service, send(request, Rendered.of(ActorList(actors=listed).model_dump_json().encode())))


@router.get(
    "/{actor_id}/training-data",
    response_model=TrainingData,
    responses=reads(400, 404, 500, 502, 503, observed=True),
    openapi_extra=IF_NONE_MATCH,
)
async def training_data(request: Request, service: ServiceDep, actor_id: str, refresh: bool = False) -> Response:
    """Seed 004's document; `42` and `0042` are the same actor. `refresh=true` observes its files live.

    An actor with no manifest yet is auto-initialised (seed 004's `get_training_data`): observed live, its
    manifest written under the bucket lock, that document served. While S3 is unreachable: the manifest on
    disk, with the header `X-Pixel-Observed: manifest-only; s3=unreachable` (a refresh too); 503 for an actor
    without one, since it cannot be observed."""
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
    if service.training_data(ws.desired, actor) is None:
        return send(request, await run_in_threadpool(service.initialize_manifest, ws, actor))
    return marked(service, send(request, service.manifest_document(ws, actor)))
