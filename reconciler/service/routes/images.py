"""The mutations: add and remove an actor's training images, each a local change plus a targeted apply
(reconciler.service.mutations). Every route here needs the bearer token (the router's security dependency)."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from reconciler.service import mutations
from reconciler.service.deps import ServiceDep, SettingsDep, require_token
from reconciler.service.models import TrainingData
from reconciler.service.responses import errors, ok, send
from reconciler.service.state import ServiceError

router = APIRouter(prefix="/api/actors", tags=["images"], dependencies=[Security(require_token)])

_MUTATION_ERRORS = (400, 401, 403, 404, 409, 500, 502, 503)
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
_UPLOAD_NOTE = {
    "X-Pixel-Upload": {
        "description": (
            "only for a report-only actor (authority: none): the images were written locally, none will reach S3"
        ),
        "schema": {"type": "string"},
    }
}


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


@router.post(
    "/{actor_id}/training-images",
    response_model=TrainingData,
    status_code=201,
    responses={201: ok(extra=_UPLOAD_NOTE), **errors(*_MUTATION_ERRORS, 413, 415)},
    openapi_extra=_MULTIPART,
)
async def upload(request: Request, service: ServiceDep, settings: SettingsDep, actor_id: str) -> Response:
    """Add JPEGs as {actor_name}_{next index}.jpg, then a targeted apply uploads them and rewrites the manifest."""
    limit = settings.max_image_bytes
    files = await _images(request, limit)
    rendered, note, _ = await run_in_threadpool(mutations.add_images, service, actor_id, files, limit)
    response = send(request, rendered, 201)
    if note is not None:
        response.headers["X-Pixel-Upload"] = note  # the seed's document has no field for it
    return response


@router.delete(
    "/{actor_id}/training-images/{filename}",
    response_model=TrainingData,
    responses={200: ok(), **errors(*_MUTATION_ERRORS)},
)
async def delete(
    request: Request,
    service: ServiceDep,
    actor_id: str,
    filename: str,
    delete_from_s3: Annotated[
        bool,
        Query(
            description=(
                "false (the default): the local copy and the manifest entry go, S3 is left alone; the object "
                "is recorded as excluded from the manifest (kept in S3), so no later plan, apply or GET lists, "
                "downloads or deletes it (POST .../{filename}/include, or uploading that file name, lifts it). "
                "true: delete the S3 object too, within the delete guards (409 if refused, nothing deleted), "
                "and lift any exclusion of it."
            )
        ),
    ] = False,
) -> Response:
    """Seed 004's delete "from the manifest and optionally S3": the manifest entry and the local file, the S3
    object when asked and allowed (else S3 keeps it, excluded from the manifest), then the targeted apply
    rewrites the manifest. Any refusal deletes nothing."""
    remove = functools.partial(mutations.remove_image, delete_from_s3=delete_from_s3)
    return send(request, await run_in_threadpool(remove, service, actor_id, filename))


@router.post(
    "/{actor_id}/training-images/{filename}/include",
    response_model=TrainingData,
    responses={200: ok(), **errors(*_MUTATION_ERRORS)},
)
async def include(request: Request, service: ServiceDep, actor_id: str, filename: str) -> Response:
    """Lift an exclusion made by a DELETE with delete_from_s3=false: the image S3 kept is listed in the manifest
    again (and downloaded where the actor pulls from S3). 404 when it is not excluded; 409, nothing changed,
    where the specs prune the actor's S3 side (the apply would delete the object: upload that file name instead)."""
    return send(request, await run_in_threadpool(mutations.include_image, service, actor_id, filename))
