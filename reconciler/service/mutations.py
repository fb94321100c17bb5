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
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from reconciler.actor_layout import MAPPING_PREFIX, exclusions_ref
from reconciler.apply.report import LogReporter
from reconciler.apply.session import LockOptions, locked, run_locked
from reconciler.errors import UserError
from reconciler.globs import matches
from reconciler.manifests import exclusions
from reconciler.manifests.common import iso_ms_from_ns
from reconciler.model import (
    Action,
    ActionKind,
    ActorExclusions,
    ActorSpec,
    Authority,
    Change,
    Entry,
    ExcludedImage,
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


def refusals_with(
    ws: Workspace, actor: ActorSpec, observed: Observed, seen: MappingObservation, *, keep_s3: bool
) -> list[str]:
    """The errors the targeted plan would have once the actor's sides are `seen` (a file removed locally, an
    image excluded or re-included): every guard (mass delete, --max-delete, protect, overlaps), judged before
    anything is touched rather than after.

    And, with `keep_s3`, the caller's promise to leave S3 alone: that plan must delete nothing there. (Without
    it, `s3_delete_refusal` has already asked the delete guards, which refuse an unpruned actor's delete.)
    """
    hypothetical = dataclasses.replace(observed, mappings={**observed.mappings, actor.mapping: seen})
    targets = [MAPPING_PREFIX + actor.actor_id]
    plan = make_plan(narrow(ws.desired, targets), hypothetical)
    errors = list(guards.check(ws.desired, hypothetical, plan, GuardLimits()).errors)
    s3 = {name for name, spec in ws.desired.stores.items() if isinstance(spec, S3StoreSpec)}
    s3_deletes = [a.target for a in plan.actions if a.kind is ActionKind.DELETE and a.target.store in s3]
    if keep_s3 and s3_deletes:
        errors.append(
            f"the specs prune actor {actor.actor_id}'s S3 side, so this change deletes "
            f"{', '.join(map(str, s3_deletes[:3]))}{' and more' if len(s3_deletes) > 3 else ''} in S3; "
            "ask with delete_from_s3=true to delete in S3"
        )
    return errors


def _excluded(service: Service, ws: Workspace, actor: ActorSpec, observed: Observed) -> dict[str, ExcludedImage]:
    """The actor's excluded images by file name; 409 while its record cannot be read (nothing can be decided)."""
    found = observed.excluded.get(actor.mapping, ActorExclusions())
    if found.problem is not None:
        ref = exclusions_ref(service.actor_layout(ws.desired), actor.actor_id)
        raise ServiceError(
            409, f"the exclusion record {ref} cannot be read ({found.problem}): fix or delete it; nothing was changed"
        )
    return {image.rel: image for image in found.images}


class _ImageLocked(NamedTuple):
    """What a change to one excluded-or-not image decides on, observed under the bucket lock."""

    ws: Workspace
    actor: ActorSpec
    mapping: MappingSpec
    lost: threading.Event
    observed: Observed
    obs: MappingObservation
    excluded: dict[str, ExcludedImage]


@contextmanager
def _image_locked(service: Service, raw_id: str, filename: str) -> Iterator[_ImageLocked]:
    """The actor of `raw_id`, live and with a well-formed `filename`, observed under the service's mutation lock
    and the bucket lock (the exclusion and delete routes decide on this, then apply before the locks go)."""
    ws, actor = service.actor(raw_id, fresh=True)
    service.require_live(MUTATIONS_OFF)
    mapping = _mapping(ws, actor)
    check_filename(mapping, actor, filename)
    with service.mutation_lock, locked(ws, LockOptions(timeout=service.lock_timeout)) as (ws, lost):
        observed = _observe(service, ws, actor)
        yield _ImageLocked(
            ws, actor, mapping, lost, observed, _of_actor(observed, actor), _excluded(service, ws, actor, observed)
        )


def _save_exclusions(ws: Workspace, actor: ActorSpec, excluded: dict[str, exclusions.Record]) -> None:
    """Write the actor's exclusion record (or remove it once empty), only over the file as it was read
    (If-Match / If-None-Match): the caller holds the bucket lock, so a change here is someone else's."""
    layout = ws.desired.actor_layout
    assert layout is not None
    ref = exclusions_ref(layout, actor.actor_id)
    store = ws.stores[ref.store]
    try:
        current = store.stat(ref.key)
        if not excluded:
            if current is not None:
                store.delete(ref.key, if_match=current.etag)
            return
        body = exclusions.render(actor.actor_id, excluded)
        store.write(
            ref.key,
            _bytes(body),
            size=len(body),
            md5=hashlib.md5(body).hexdigest(),
            if_match=current.etag if current is not None else None,
            if_absent=current is None,
        )
    except StoreError as exc:
        raise ServiceError(500, f"could not write the exclusion record {ref}: {exc}; nothing was deleted") from exc


def _records(images: dict[str, ExcludedImage]) -> dict[str, exclusions.Record]:
    return {
        name: exclusions.Record(md5=i.md5, etag=i.etag, size=i.size, excluded_at=i.excluded_at)
        for name, i in images.items()
    }


def _now() -> str:
    return iso_ms_from_ns(time.time_ns())


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
        observed = _observe(service, ws, actor)
        obs = _of_actor(observed, actor)
        excluded = _excluded(service, ws, actor, observed)
        # An excluded name is still taken (S3 keeps its object): a new image never lands on it by numbering, only
        # when the caller adds that very file name back, which lifts its exclusion.
        start = next_index([*obs.local, *obs.remote, *excluded], actor)
        back = [Path(name).name for name, _ in files]
        lifted = [name for name in back if name in excluded and excluded[name].local is None and _NAME.match(name)]
        fresh = iter(range(start, start + len(files)))
        names = [name if name in lifted else f"{actor.actor_name}_{next(fresh)}.jpg" for name in back]
        if len(set(names)) != len(names):
            raise ServiceError(400, "the same excluded file name was sent twice; nothing was written")
        if not all(matches(name, mapping.include, mapping.exclude) for name in names):
            raise ServiceError(
                409,
                f"the actor's images pattern {mapping.include[0]!r} does not select {names[0]}; nothing was written",
            )
        keys = [mapping.local_key(name) for name in names]
        _write_all(store, keys, [body for _, body in files])
        if lifted:
            try:
                _save_exclusions(ws, actor, _records({n: i for n, i in excluded.items() if n not in lifted}))
            except ServiceError:
                _remove(store, keys)  # the record still excludes them: their files must not stay behind unlisted
                raise
        try:
            _apply(ws, actor, lost)
        except ServiceError as exc:
            if exc.status == 409:  # the plan was refused before it ran: take the files back, change nothing
                if lifted:
                    _save_exclusions(ws, actor, _records(excluded))
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

    `delete_from_s3=False`: the local copy and the manifest entry go and S3 is left alone. The manifest is
    rendered from the stores, so an object S3 keeps is recorded in the actor's exclusion record
    (`manifests.exclusions`, written first, under the lock): every later plan, apply, GET and status leaves it
    out, neither downloads nor deletes it. `delete_from_s3=True`: the S3 object too, within the delete guards
    (409, nothing deleted, when they refuse), and any exclusion of it is lifted.
    """
    with _image_locked(service, raw_id, filename) as (ws, actor, mapping, lost, observed, obs, excluded):
        local, remote = obs.local.get(filename), obs.remote.get(filename)
        kept_out = excluded.get(filename)
        if kept_out is not None:
            if not delete_from_s3:
                raise ServiceError(
                    404,
                    f"actor {actor.actor_id}'s {filename!r} is already excluded from the manifest (kept in S3); "
                    "ask with delete_from_s3=true to delete it there",
                )
            local, remote = kept_out.local, kept_out.remote
        if local is None and remote is None and kept_out is None:
            raise ServiceError(404, f"actor {actor.actor_id} has no image {filename!r}, locally or in S3")
        if delete_from_s3 and remote is not None and (why := s3_delete_refusal(ws, mapping, actor, remote)):
            raise ServiceError(
                409, f"S3 deletes are not allowed for actor {actor.actor_id}: {why}; nothing was deleted"
            )
        # The actor's sides once this is done: no local copy; the object back in (to be deleted) or out (kept).
        with_remote = {**obs.remote, filename: remote} if remote is not None and delete_from_s3 else obs.remote
        seen = dataclasses.replace(
            obs,
            local={k: v for k, v in obs.local.items() if k != filename},
            remote={k: v for k, v in with_remote.items() if delete_from_s3 or k != filename},
        )
        if errors := refusals_with(ws, actor, observed, seen, keep_s3=not delete_from_s3):
            raise ServiceError(409, "the apply would be refused: " + "; ".join(errors) + "; nothing was deleted")
        records = _records(excluded)
        if delete_from_s3:
            records.pop(filename, None)
        elif remote is not None:
            records[filename] = exclusions.record_of(remote, _now())
        if records != _records(excluded):
            # Before the local copy goes: a crash in between leaves the image out of the manifest with its
            # local copy reported, never an object the next plan downloads again or prunes.
            _save_exclusions(ws, actor, records)
        if local is not None:
            try:
                ws.stores[mapping.local_store].delete(mapping.local_key(filename), if_match=local.etag)
            except StoreError as exc:
                raise ServiceError(409, f"could not delete the local file: {exc}") from exc
        _apply(ws, actor, lost)
    return service.manifest_document(ws, actor)


def include_image(service: Service, raw_id: str, filename: str) -> Rendered:
    """Re-include an image excluded from the manifest (kept in S3): its exclusion is lifted and the targeted
    apply lists it again (and, under `authority: s3`, downloads it). Refused (409, nothing changed) where the
    specs prune the actor's S3 side, since the apply would then delete the object: add its bytes back instead
    (POST that file name)."""
    with _image_locked(service, raw_id, filename) as (ws, actor, _, lost, observed, obs, excluded):
        image = excluded.get(filename)
        if image is None:
            raise ServiceError(404, f"actor {actor.actor_id}'s {filename!r} is not excluded from the manifest")
        seen = dataclasses.replace(
            obs,
            local={**obs.local, **({filename: image.local} if image.local is not None else {})},
            remote={**obs.remote, **({filename: image.remote} if image.remote is not None else {})},
        )
        if errors := refusals_with(ws, actor, observed, seen, keep_s3=True):
            raise ServiceError(409, "the apply would be refused: " + "; ".join(errors) + "; nothing was changed")
        _save_exclusions(ws, actor, _records({n: i for n, i in excluded.items() if n != filename}))
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
