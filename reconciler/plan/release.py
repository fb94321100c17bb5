"""Planner pass: release local copies once S3 verifiably holds them.

For a mapping with `release_local: true` (authority local), every local file
gets two more nodes:

    (upload | move | rehash of its key, if the plan has one)
        -> verify   HEAD the object: its recorded md5 and size must be the local file's
        -> release-local   delete the local file, If-Match its version token from the plan

The executor skips every descendant of a failed node, so a release never runs
when the upload or the verification failed. Files with a conflict or an unknown
md5 on either side get no release at all.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.globs import matches
from reconciler.model import (
    Action,
    ActionKind,
    Authority,
    Change,
    Desired,
    MappingObservation,
    MappingSpec,
    ObjectRef,
    Observed,
    Plan,
    Precondition,
)
from reconciler.plan.diff import action_id, short, unobserved, verify_action

# Actions after which the object at their target holds the planned content.
WRITERS = frozenset({ActionKind.UPLOAD, ActionKind.MOVE, ActionKind.COPY, ActionKind.REHASH})


def release_nodes(
    spec: MappingSpec, obs: MappingObservation, rel: str, writer_of: Callable[[ObjectRef], str | None]
) -> tuple[Action, Action, str | None] | None:
    """The verify and release-local of one local file, with the id of the action that writes its S3 copy
    (`writer_of`, None when none does); None when the file is not released. The streaming planner asks per
    file too (reconciler/scale/)."""
    local = obs.local[rel]
    if local.md5 is None or unobserved(obs, rel) is not None:
        return None
    if spec.keep_local and matches(rel, spec.keep_local, ()):
        return None  # keep_local: uploaded, never released
    remote_ref = ObjectRef(spec.s3_store, spec.remote_key(rel))
    local_ref = ObjectRef(spec.local_store, spec.local_key(rel))
    writer = writer_of(remote_ref)
    remote = obs.remote.get(rel)
    if writer is None and (remote is None or remote.md5 != local.md5):
        return None  # nothing will make S3 hold this content: keep the local copy
    verify = verify_action(
        remote_ref,
        spec.name,
        local,
        f"confirm S3 records md5 {short(local.md5)} before the local copy is released",
        source=local_ref,
    )
    release = Action(
        id=action_id(ActionKind.RELEASE_LOCAL, local_ref),
        kind=ActionKind.RELEASE_LOCAL,
        change=Change.DELETE,
        mapping=spec.name,
        target=local_ref,
        source=remote_ref,
        size=local.size,
        md5=local.md5,
        reason=f"release_local: S3 holds it at {remote_ref.key}",
        precondition=Precondition(
            target_etag=local.etag,
            source_size=local.size,
            source_mtime_ns=local.mtime_ns,
            source_md5=local.md5,
        ),
    )
    return verify, release, writer


def releases(spec: MappingSpec) -> bool:
    """The mapping releases local copies: the pass has work only for these."""
    return spec.release_local and spec.authority is Authority.LOCAL


def plan_release(desired: Desired, observed: Observed, plan: Plan) -> Plan:
    writers: dict[ObjectRef, str] = {a.target: a.id for a in plan.actions if a.kind in WRITERS}
    added: list[Action] = []
    edges: list[tuple[str, str]] = []
    for spec in desired.mappings:
        obs = observed.mappings.get(spec.name)
        if obs is None or not releases(spec):
            continue
        for rel in sorted(obs.local):
            found = release_nodes(spec, obs, rel, writers.get)
            if found is None:
                continue
            verify, release, writer = found
            added += [verify, release]
            if writer is not None:
                edges.append((writer, verify.id))
            edges.append((verify.id, release.id))
    return plan.extended(added, edges)
