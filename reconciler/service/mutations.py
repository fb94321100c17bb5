"""Seed 004's TrainingDataAPI mutations, as pixel does every change: edit the local side, then a targeted apply.

Under `authority: local` the actor's directory is the truth, so adding an image
is writing a file there (temp, fsync, rename: LocalStore.write) and removing one
is deleting the file; a `pixel apply --target actors/ID` then makes S3 and the
manifest follow, through the same plan -> guards -> lock -> executor path as
the CLI. The bucket lock is taken before anything is written, and every check
(body, name, the delete guards) runs before the first byte changes, so a
refused request leaves everything as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import threading
from collections.abc import Sequence

from reconciler.actor_layout import MAPPING_PREFIX
from reconciler.apply.report import LogReporter
from reconciler.apply.session import LockOptions, locked, run_locked
from reconciler.errors import UserError
from reconciler.globs import matches
from reconciler.model import (
    Action,
    ActionKind,
    ActorSpec,
    Authority,
    Change,
    Entry,
    MappingObservation,
    MappingSpec,
    ObjectRef,
    Observed,
    Precondition,
    S3StoreSpec,
)
from reconciler.plan import guards
from reconciler.plan import plan as make_plan
from reconciler.plan.diff import action_id
from reconciler.plan.guards import GuardLimits, delete_refusals
from reconciler.service.state import Rendered, Service, ServiceError
from reconciler.stores.base import OpenSource, Store, StoreError
from reconciler.targets import narrow
from reconciler.workflow import guarded_plan
from reconciler.workspace import Workspace

JPEG_START = b"\xff\xd8\xff"  # SOI and the first marker's 0xFF
JPEG_END = b"\xff\xd9"  # EOI
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_FILES = 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def check_jpeg(name: str, body: bytes, limit: int) -> None:
    if len(body) > limit:
        raise ServiceError(413, f"{name}: {len(body)} bytes, more than the limit of {limit} bytes per image")
    if len(body) < len(JPEG_START) + len(JPEG_END) or not body.startswith(JPEG_START):
        raise ServiceError(415, f"{name}: not a JPEG (a JPEG starts with the bytes FF D8 FF)")
    if not body.rstrip(b"\0").endswith(JPEG_END):
        raise ServiceError(415, f"{name}: not a whole JPEG (no end-of-image marker FF D9; truncated?)")


def check_filename(mapping: MappingSpec, actor: ActorSpec, filename: str) -> None:
    """A bare file name the actor's images glob selects: no separator, no `..`, nothing else reachable."""
    if "/" in filename or "\\" in filename or ".." in filename or "\0" in filename or not _NAME.match(filename):
        raise ServiceError(
            400, f"invalid image filename {filename[:80]!r}: expected a bare name like {actor.actor_name}_0.jpg"
        )
    if not matches(filename, mapping.include, mapping.exclude):
        raise ServiceError(
            400, f"{filename!r} is not one of actor {actor.actor_id}'s image names ({', '.join(mapping.include)})"
        )


def _mapping(ws: Workspace, actor: ActorSpec) -> MappingSpec:
    return next(m for m in ws.desired.mappings if m.name == actor.mapping)


# Why a mutation answers 503 while S3 is unreachable: a local edit could not be applied, so none is made.
MUTATIONS_OFF = "mutations are off until it answers again; nothing was changed"


def _observe(service: Service, ws: Workspace, actor: ActorSpec) -> Observed:
    try:
        observed, _ = guarded_plan(ws, targets=[MAPPING_PREFIX + actor.actor_id])
    except UserError as exc:
        raise service.failed(exc, 502, f"could not observe actor {actor.actor_id}") from exc
    return observed


def _of_actor(observed: Observed, actor: ActorSpec) -> MappingObservation:
    return observed.mappings.get(actor.mapping, MappingObservation({}, {}))


def refusals_without(
    ws: Workspace, actor: ActorSpec, observed: Observed, filename: str, *, delete_from_s3: bool = True
) -> list[str]:
    """The errors the targeted plan would have once `filename` is gone locally: every guard (mass delete,
    --max-delete, protect, overlaps), judged before the file is touched rather than after.

    And, without `delete_from_s3`, the caller's promise to leave S3 alone: that plan must delete nothing there.
    (With it, `s3_delete_refusal` has already asked the delete guards, which refuse an unpruned actor's delete.)
    """
    seen = _of_actor(observed, actor)
    without = dataclasses.replace(seen, local={k: v for k, v in seen.local.items() if k != filename})
    hypothetical = dataclasses.replace(observed, mappings={**observed.mappings, actor.mapping: without})
    targets = [MAPPING_PREFIX + actor.actor_id]
    plan = make_plan(narrow(ws.desired, targets), hypothetical)
    errors = list(guards.check(ws.desired, hypothetical, plan, GuardLimits()).errors)
    s3 = {name for name, spec in ws.desired.stores.items() if isinstance(spec, S3StoreSpec)}
    s3_deletes = [a.target for a in plan.actions if a.kind is ActionKind.DELETE and a.target.store in s3]
    if not delete_from_s3 and s3_deletes:
        errors.append(
            f"the specs prune actor {actor.actor_id}'s S3 side, so removing {filename} locally deletes "
            f"{', '.join(map(str, s3_deletes[:3]))}{' and more' if len(s3_deletes) > 3 else ''} in S3 too; "
            "ask with delete_from_s3=true to delete both"
        )
    return errors


def next_index(names: Sequence[str], actor: ActorSpec) -> int:
    pattern = re.compile(re.escape(actor.actor_name) + r"_(\d+)\.jpg$")
    found = [int(m.group(1)) for name in names if (m := pattern.match(name))]
    return max(found, default=-1) + 1


def _apply(ws: Workspace, actor: ActorSpec, lost: threading.Event) -> None:
    """The targeted apply (`pixel apply --target actors/ID`), lock already held: plan, guards, execute."""
    try:
        _, plan = guarded_plan(ws, targets=[MAPPING_PREFIX + actor.actor_id])
        if plan.errors:
            raise ServiceError(409, "the apply was refused: " + "; ".join(plan.errors))
        if not plan.has_changes:
            return
        result, _ = run_locked(ws, plan, parallelism=8, reporter=LogReporter(), lost=lost)
    except UserError as exc:
        raise ServiceError(502, f"the apply of actor {actor.actor_id} failed: {exc}") from exc
    if not result.ok:
        failed = [f"{o.action.id}: {o.error}" for o in result.failed] + [o.action.id for o in result.skipped]
        raise ServiceError(502, f"the apply of actor {actor.actor_id} did not finish: " + "; ".join(failed[:5]))


def _bytes(body: bytes) -> OpenSource:
    return lambda: io.BytesIO(body)


def _write_all(store: Store, keys: Sequence[str], bodies: Sequence[bytes]) -> None:
    """Each file temp -> fsync -> rename, created only where nothing is (If-None-Match); all or none."""
    written: list[str] = []
    try:
        for key, body in zip(keys, bodies, strict=True):
            store.write(key, _bytes(body), size=len(body), md5=hashlib.md5(body).hexdigest(), if_absent=True)
            written.append(key)
    except StoreError as exc:
        _remove(store, written)
        raise ServiceError(500, f"could not write the images locally: {exc}; nothing was kept") from exc


def _remove(store: Store, keys: Sequence[str]) -> None:
    for key in keys:
        store.delete(key)


def upload_note(actor: ActorSpec, mapping: MappingSpec) -> str | None:
    """What an upload's answer must add to the document: that its images stay local, where that is so."""
    if mapping.authority is Authority.NONE:
        return (
            f"local-only; actor {actor.actor_id} is report-only (authority: none): the images were written "
            "locally and nothing will reach S3"
        )
    return None


def add_images(
    service: Service, raw_id: str, files: Sequence[tuple[str, bytes]], limit: int
) -> tuple[Rendered, str | None, list[str]]:
    """POST /api/actors/{id}/training-images: each body checked, named {actor_name}_{next}.jpg, then applied.

    Returns the new document, for a report-only actor the note that nothing was sent to S3, and the names given.
    """
    ws, actor = service.actor(raw_id, fresh=True)
    service.require_live(MUTATIONS_OFF)
    mapping = _mapping(ws, actor)
    if not files:
        raise ServiceError(400, "no images: send one or more JPEGs as multipart form fields named 'files'")
    if len(files) > MAX_FILES:
        raise ServiceError(400, f"{len(files)} images in one request; at most {MAX_FILES}")
    for name, body in files:
        check_jpeg(name or "(unnamed)", body, limit)
    if mapping.authority is Authority.S3:
        raise ServiceError(
            409, f"actor {actor.actor_id}'s images come from S3 (authority: s3): add them there, pixel downloads them"
        )
    store = ws.stores[mapping.local_store]
    with service.mutation_lock, locked(ws, LockOptions(timeout=service.lock_timeout)) as (ws, lost):
        obs = _of_actor(_observe(service, ws, actor), actor)
        start = next_index([*obs.local, *obs.remote], actor)
        names = [f"{actor.actor_name}_{start + i}.jpg" for i in range(len(files))]
        if not all(matches(name, mapping.include, mapping.exclude) for name in names):
            raise ServiceError(
                409,
                f"the actor's images pattern {mapping.include[0]!r} does not select {names[0]}; nothing was written",
            )
        keys = [mapping.local_key(name) for name in names]
        _write_all(store, keys, [body for _, body in files])
        try:
            _apply(ws, actor, lost)
        except ServiceError as exc:
            if exc.status == 409:  # the plan was refused before it ran: take the files back, change nothing
                _remove(store, keys)
            raise
    return service.manifest_document(ws, actor), upload_note(actor, mapping), names


def s3_delete_refusal(ws: Workspace, mapping: MappingSpec, actor: ActorSpec, remote: Entry) -> str | None:
    """Why pixel may not delete this S3 image, by the same guards a plan answers to; None when it may."""
    if mapping.authority is not Authority.LOCAL:
        return f"actor {actor.actor_id}'s authority is {mapping.authority.value}: pixel never deletes its S3 images"
    delete = Action(
        id=action_id(ActionKind.DELETE, ObjectRef(mapping.s3_store, mapping.remote_key(remote.key))),
        kind=ActionKind.DELETE,
        change=Change.DELETE,
        mapping=mapping.name,
        target=ObjectRef(mapping.s3_store, mapping.remote_key(remote.key)),
        reason="removed through the API",
        precondition=Precondition(target_etag=remote.etag),
    )
    refusals = delete_refusals(ws.desired, delete)
    return "; ".join(refusals) if refusals else None


def remove_image(service: Service, raw_id: str, filename: str, *, delete_from_s3: bool = False) -> Rendered:
    """DELETE /api/actors/{id}/training-images/{filename}: seed 004's "from the manifest and optionally S3".

    `delete_from_s3=False`: the local copy goes and S3 is left alone; refused (409, nothing deleted) where the
    specs would make the apply delete the object anyway (a pruned actor). Pixel's manifest reflects the stores,
    so an image still in S3 stays listed, as `s3_only` (the seed's own rule: every file is accounted for).
    `delete_from_s3=True`: the S3 object too, within the delete guards (409, nothing deleted, when they refuse).
    """
    ws, actor = service.actor(raw_id, fresh=True)
    service.require_live(MUTATIONS_OFF)
    mapping = _mapping(ws, actor)
    check_filename(mapping, actor, filename)
    with service.mutation_lock, locked(ws, LockOptions(timeout=service.lock_timeout)) as (ws, lost):
        observed = _observe(service, ws, actor)
        obs = _of_actor(observed, actor)
        local, remote = obs.local.get(filename), obs.remote.get(filename)
        if local is None and remote is None:
            raise ServiceError(404, f"actor {actor.actor_id} has no image {filename!r}, locally or in S3")
        if delete_from_s3 and remote is not None and (why := s3_delete_refusal(ws, mapping, actor, remote)):
            raise ServiceError(
                409, f"S3 deletes are not allowed for actor {actor.actor_id}: {why}; nothing was deleted"
            )
        if not delete_from_s3 and local is None:
            raise ServiceError(
                409,
                f"actor {actor.actor_id}'s {filename!r} is only in S3: there is no local copy to remove; "
                "ask with delete_from_s3=true to delete it there; nothing was deleted",
            )
        if errors := refusals_without(ws, actor, observed, filename, delete_from_s3=delete_from_s3):
            raise ServiceError(409, "the apply would be refused: " + "; ".join(errors) + "; nothing was deleted")
        if local is not None:
            try:
                ws.stores[mapping.local_store].delete(mapping.local_key(filename), if_match=local.etag)
            except StoreError as exc:
                raise ServiceError(409, f"could not delete the local file: {exc}; nothing was deleted") from exc
        _apply(ws, actor, lost)
    return service.manifest_document(ws, actor)


def replace_image(service: Service, raw_id: str, filename: str, body: bytes, limit: int) -> Rendered:
    """Seed 004's `update_image`: new bytes for an existing local image, then the targeted apply re-uploads it
    (its md5 recomputed, the manifest rewritten). Written only over the exact file observed (If-Match)."""
    ws, actor = service.actor(raw_id, fresh=True)
    service.require_live(MUTATIONS_OFF)
    mapping = _mapping(ws, actor)
    check_filename(mapping, actor, filename)
    check_jpeg(filename, body, limit)
    if mapping.authority is Authority.S3:
        raise ServiceError(
            409, f"actor {actor.actor_id}'s images come from S3 (authority: s3): change them there"
        )
    store = ws.stores[mapping.local_store]
    with service.mutation_lock, locked(ws, LockOptions(timeout=service.lock_timeout)) as (ws, lost):
        local = _of_actor(_observe(service, ws, actor), actor).local.get(filename)
        if local is None:
            raise ServiceError(404, f"actor {actor.actor_id} has no local image {filename!r} to update")
        key = mapping.local_key(filename)
        try:
            store.write(key, _bytes(body), size=len(body), md5=hashlib.md5(body).hexdigest(), if_match=local.etag)
        except StoreError as exc:
            raise ServiceError(409, f"could not replace the local file: {exc}; nothing was changed") from exc
        _apply(ws, actor, lost)
    return service.manifest_document(ws, actor)


def sync_actor(service: Service, raw_id: str) -> Rendered:
    """Seed 004's `sync_actor_training_data`: `pixel apply --target actors/ID` under the lock, the new document."""
    ws, actor = service.actor(raw_id, fresh=True)
    service.require_live(MUTATIONS_OFF)
    with service.mutation_lock, locked(ws, LockOptions(timeout=service.lock_timeout)) as (ws, lost):
        _apply(ws, actor, lost)
    return service.manifest_document(ws, actor)
