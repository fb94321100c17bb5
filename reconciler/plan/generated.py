"""Planner pass: write-manifest nodes for actor manifests, the dataset registry and the inventory.

A generated file is rewritten when an action of this plan touches what it
describes (the write waits for every such action: it is rendered from reality
after them), or, when none does, when the file on disk is not what rendering
the observed state gives (deleted, or edited by hand). Orphans and missing
images become findings here too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from reconciler.actor_layout import LEGACY_SCOPE, legacy_response_key
from reconciler.manifests.actors import ActorState, actor_state, render_actor_manifest
from reconciler.manifests.common import previous_document
from reconciler.manifests.exclusions import KEPT_IN_S3, finding_message
from reconciler.manifests.final import summary_of
from reconciler.manifests.inventory import render_inventory
from reconciler.manifests.registry import render_registry, unmanaged_parts, unreadable
from reconciler.model import (
    Action,
    ActionKind,
    ActorLayout,
    ActorSpec,
    Change,
    Desired,
    Entry,
    ExcludedImage,
    Finding,
    FindingKind,
    GeneratedFile,
    MappingObservation,
    ObjectRef,
    Observed,
    Precondition,
    S3StoreSpec,
    inventoried_stores,
)
from reconciler.plan.datasets import tier_entry
from reconciler.plan.diff import action_id, delete_action
from reconciler.plan.final import SCOPE as FINAL_SCOPE
from reconciler.plan.view import PlanView, Touching, on_plan

REGISTRY_SCOPE = "registry"
INVENTORY_SCOPE = "inventory"


def state_for(desired: Desired, observed: Observed, actor: ActorSpec) -> ActorState:
    layout = desired.actor_layout
    assert layout is not None
    mapping = next(m for m in desired.mappings if m.name == actor.mapping)
    s3 = desired.stores[mapping.s3_store]
    assert isinstance(s3, S3StoreSpec)
    obs = observed.mappings.get(actor.mapping, MappingObservation({}, {}))
    return actor_state(layout, actor, mapping, s3, obs.local, obs.remote, observed.strays.get(actor.mapping, ()))


def _write(
    ref: ObjectRef,
    scope: str,
    current: GeneratedFile,
    touching: int,
    rendered: bytes | None,
    changed: str | None = None,
) -> Action | None:
    """`changed`: what in the files described changed since the file was written, when that is known; only
    a difference nothing observed explains is put down to an edit by hand."""
    if touching:
        reason = f"{touching} action(s) of this plan change what it describes; rendered after them"
    elif rendered is not None and current.content != rendered:
        if current.entry is None:
            reason = "missing: generated from the observed state"
        elif changed:
            reason = f"{changed}: rewritten"
        else:
            reason = "differs from the observed state (edited by hand?): rewritten"
    else:
        return None
    if current.entry is None and touching:
        reason = f"not there yet; {reason}"
    return Action(
        id=action_id(ActionKind.WRITE_MANIFEST, ref),
        kind=ActionKind.WRITE_MANIFEST,
        change=Change.CREATE if current.entry is None else Change.UPDATE,
        mapping=scope,
        target=ref,
        size=len(rendered) if rendered is not None and not touching else 0,
        reason=reason,
        precondition=Precondition(
            target_absent=current.entry is None,
            target_etag=current.entry.etag if current.entry is not None else None,
        ),
    )


def _listed(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(file name -> entry, accountability) of an actor manifest document, tolerating a hand-broken one."""
    entries = document.get("training_data")
    by_name = {str(e.get("filename")): e for e in (entries if isinstance(entries, list) else []) if isinstance(e, dict)}
    accounts = document.get("accountability")
    return by_name, accounts if isinstance(accounts, dict) else {}


def what_changed(
    previous: bytes | None, rendered: bytes, state: ActorState, excluded: Iterable[str] = ()
) -> str | None:
    """How the actor's files differ from what its manifest lists: images not listed yet, changed, gone or
    excluded, orphans adopted or reported, images missing; None when they are as the manifest says (then the
    manifest itself was changed). Worded by what differs, not who did it: a listing removed by hand reads
    "not listed"."""
    old = previous_document(previous)
    if old is None:
        return None
    before, old_accounts = _listed(old)
    after, new_accounts = _listed(json.loads(rendered))
    adopted = {e.key for e in state.adopted}
    kept_out = set(excluded)
    parts = []
    if new := [n for n in after if n not in before and after[n].get("local_path") not in adopted]:
        parts.append(f"{len(new)} image(s) not listed yet")
    if edited := [n for n in after if n in before and after[n] != before[n]]:
        parts.append(f"{len(edited)} image(s) changed since listed")
    if out := [n for n in before if n not in after and n in kept_out]:
        parts.append(f"{KEPT_IN_S3}: " + ", ".join(out))
    if gone := [n for n in before if n not in after and n not in kept_out]:
        parts.append(f"{len(gone)} listed image(s) gone")
    if taken := [e.key for e in state.adopted if e.key.rsplit("/", 1)[-1] not in before]:
        parts.append("orphan, adopted: " + ", ".join(taken))
    for field, label in (("orphans", "orphan, reported"), ("missing", "missing")):
        known = old_accounts.get(field)
        known = known if isinstance(known, list) else []
        if fresh := [str(k) for k in new_accounts.get(field, []) if k not in known]:
            parts.append(f"{label}: " + ", ".join(fresh))
    return "; ".join(parts) or None


def _legacy_delete(layout: ActorLayout, actor: ActorSpec, entry: Entry) -> Action:
    return delete_action(
        LEGACY_SCOPE,
        ObjectRef(layout.local_store, entry.key),
        entry,
        f"legacy response.json of actor {actor.actor_id}: replaced by its manifest (seed 004); "
        "legacy_response_json: delete",
    )


def _legacy(layout: ActorLayout, actor: ActorSpec, state: ActorState) -> tuple[list[Action], list[Finding]]:
    """The actor's legacy response.json: a delete when the layout asks for one and the version is known."""
    key = legacy_response_key(layout, actor.actor_name)
    entry = next((e for e in state.orphans if e.key == key), None)
    if entry is None:
        return [], []
    if layout.legacy_response_json == "delete" and entry.etag is not None:
        return [_legacy_delete(layout, actor, entry)], []
    message = (
        "legacy response.json: replaced by the manifest (seed 004: no longer used); "
        "set legacy_response_json: delete under actors to plan its deletion"
    )
    return [], [Finding(FindingKind.ORPHAN, actor.mapping, f"{layout.local_store}:{key}", message)]


def _actor_findings(actor: ActorSpec, state: ActorState, store: str, legacy: str) -> list[Finding]:
    found = [
        Finding(
            FindingKind.ORPHAN,
            actor.mapping,
            f"{store}:{entry.key}",
            f"orphan, reported: under actor {actor.actor_id}'s directory but not an image its spec expects",
        )
        for entry in state.orphans
        if entry.key != legacy
    ]
    found += [
        Finding(
            FindingKind.MISSING,
            actor.mapping,
            name,
            f"actor {actor.actor_id} declares {name} (count: {actor.count}) but it is neither local nor in S3",
        )
        for name in state.missing
    ]
    return found


def _excluded_findings(desired: Desired, actor: ActorSpec, images: Iterable[ExcludedImage]) -> list[Finding]:
    """An excluded image is the user's decision, not a finding; other bytes under its name, or a local copy of
    it that nothing lists, are."""
    mapping = next(m for m in desired.mappings if m.name == actor.mapping)
    found = []
    for image in images:
        message = finding_message(image, actor.actor_id)
        if message is not None:
            where = f"{mapping.s3_store}:{mapping.remote_key(image.rel)}"
            found.append(Finding(FindingKind.UNMANAGED, actor.mapping, where, message))
    return found


def manifests_pass(desired: Desired, observed: Observed, view: PlanView) -> None:
    """`plan_manifests` on any view of the plan: a generated file asks how many actions of the plan touch what
    it describes, and waits for each of them; it never holds them."""
    actions: list[Action] = []
    findings: list[Finding] = []
    layout = desired.actor_layout
    for actor in desired.actors:
        assert layout is not None
        state = state_for(desired, observed, actor)
        findings += _actor_findings(actor, state, layout.local_store, legacy_response_key(layout, actor.actor_name))
        excluded = observed.excluded.get(actor.mapping)
        if excluded is not None and excluded.problem is not None:
            continue  # what the record keeps out is unknown: a manifest rendered now could list it again
        kept_out = excluded.images if excluded is not None else ()
        findings += _excluded_findings(desired, actor, kept_out)
        legacy_actions, legacy_findings = _legacy(layout, actor, state)
        actions += legacy_actions
        findings += legacy_findings
        described = Touching(scope=actor.mapping)
        touching = view.count(described) + len(legacy_actions)
        current = observed.generated.get(actor.manifest, GeneratedFile())
        rendered = None if touching else render_actor_manifest(state, actor, current.content, None)
        changed = (
            None
            if rendered is None
            else what_changed(current.content, rendered, state, (image.rel for image in kept_out))
        )
        write = _write(actor.manifest, actor.mapping, current, touching, rendered, changed)
        if write is not None:
            actions.append(write)
            view.wait_for(described, write.id)
            view.add(edges=[(legacy.id, write.id) for legacy in legacy_actions])
    if desired.registry is not None:
        refs = [ObjectRef(d.store, d.key) for d in desired.datasets]
        refs += [d.source for d in desired.datasets if d.source is not None]
        described = Touching(refs=frozenset(refs))
        touching = view.count(described)
        current = observed.generated.get(desired.registry, GeneratedFile())

        def lookup(store: str, key: str) -> Entry | None:
            # A record index lies in pixel's own space, which the tiers' listings leave out.
            index = observed.record_indexes.get(ObjectRef(store, key))
            return index if index is not None else tier_entry(desired, observed, store, key)

        rendered = None if touching else render_registry(desired, lookup, current.content)
        write = _write(desired.registry, REGISTRY_SCOPE, current, touching, rendered)
        if unreadable(current.content):
            write = None
            findings.append(
                Finding(
                    FindingKind.PROBLEM,
                    REGISTRY_SCOPE,
                    str(desired.registry),
                    "not a JSON object: left as written, not rewritten (that would lose what people wrote); "
                    "fix the JSON, or delete the file to have it generated again",
                )
            )
        findings += [
            Finding(FindingKind.UNMANAGED, REGISTRY_SCOPE, f"{desired.registry}#{pointer}", f"{what}: kept as written")
            for pointer, what in unmanaged_parts(desired, current.content)
        ]
        if write is not None:
            actions.append(write)
            view.wait_for(described, write.id)
    if desired.inventory is not None:
        # Anything in a bucket a tier lies in; and the inventory summarises the published final dataset too, so a
        # compile or shard delete touches it.
        described = Touching(
            scope=FINAL_SCOPE, scope_except=ActionKind.DOWNLOAD, stores=frozenset(inventoried_stores(desired))
        )
        touching = view.count(described)
        current = observed.generated.get(desired.inventory, GeneratedFile())
        published = observed.final.manifest.content if observed.final is not None else None
        rendered = (
            None if touching else render_inventory(desired, observed.buckets, summary_of(published), current.content)
        )
        write = _write(desired.inventory, INVENTORY_SCOPE, current, touching, rendered)
        if write is not None:
            actions.append(write)
            view.wait_for(described, write.id)
    view.add(actions, findings=findings)


plan_manifests = on_plan(manifests_pass)
