"""Planner pass: is the published final dataset current, and if not, why, and what would a rebuild do.

Pure: the published manifest's bytes, the objects under the final dataset's
prefix and the sources' md5s all arrive in `Observed.final`. The manifest
records the recipe and every source's key and md5; when they equal what the
specs and the registry hold now, and every shard it names is in S3 with its
md5, the dataset is current and this pass adds nothing. Otherwise it adds

    compile final_dataset   (reason: "clinical_cot changed: md5 a1b2… → c3d4…", "splits changed", ...)
      -> delete <each shard of the previous build>   kept at run time if the new manifest names it

A shard's key carries its content's md5, so the compile never writes over a shard
the current manifest points to, and the deletes only run once the new manifest is
in place (their edge from the compile); each delete is If-Match on the ETag seen
here and reads the manifest first, so a shard the new build reuses is kept. With
nothing to rebuild, only leftovers of an interrupted build (shards no manifest
names) are deleted, and a missing local manifest copy is downloaded again.

Only keys this dataset wrote are ever deleted: those the published manifest names
or lists in its history, and keys of its shard scheme; anything else under the
prefix is reported as unmanaged and left. A shard key holding other bytes than a
build wrote there (its recorded md5 missing, or not the one its name carries)
would be yielded again by the rebuild, which never overwrites blind: it is
deleted before the compile, If-Match the foreign ETag seen here, so the rebuild
can write it and a change made since is still refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from reconciler.manifests.final import ManifestError, Published, Shard, build_id, parse, shard_name_md5
from reconciler.model import (
    Action,
    ActionKind,
    Change,
    Desired,
    Entry,
    FinalDatasetSpec,
    Finding,
    FindingKind,
    ObjectRef,
    Observed,
    Plan,
    Precondition,
)
from reconciler.plan.datasets import last_writer
from reconciler.plan.diff import action_id, delete_action, short, transfer_precondition
from reconciler.plan.view import PlanView, on_plan
from reconciler.units import human_bytes

SCOPE = "final_dataset"
_RECIPE_FIELDS = ("splits", "split_key", "shard", "dedupe", "to", "compiled")


def _recipe_reasons(final: FinalDatasetSpec, recorded: dict[str, object]) -> list[str]:
    wanted = json.loads(final.recipe)
    changed = [f"{name} changed" for name in _RECIPE_FIELDS if recorded.get(name) != wanted.get(name)]
    if not changed and recorded.get("digest") != final.recipe_digest:
        changed.append("recipe changed")
    return changed


def _source_reasons(final: FinalDatasetSpec, published: Published, md5s: dict[str, str]) -> list[str]:
    reasons = []
    for source in final.sources:
        before = published.sources.get(source.name)
        if before is None:
            reasons.append(f"{source.name} added")
        elif before[0] != source.key:
            reasons.append(f"{source.name} moved: {before[0]} → {source.key}")
        elif before[1] != md5s[source.name]:
            reasons.append(f"{source.name} changed: md5 {short(before[1])} → {short(md5s[source.name])}")
    wanted = {s.name for s in final.sources}
    reasons += [f"{name} removed" for name in sorted(published.sources) if name not in wanted]
    return reasons


def _differs(entry: Entry | None, shard: Shard) -> bool:
    """Whether S3 does not hold the bytes a manifest names at `shard.key`.

    Every object pixel writes records its md5 (x-amz-meta-md5 when the ETag is not one), so an object with
    no md5 there was written by someone else.
    """
    return entry is None or entry.size != shard.size or entry.md5 != shard.md5


def _integrity_reasons(published: Published, objects: Mapping[str, Entry]) -> list[str]:
    listed = [*published.shards, *([published.compiled] if published.compiled is not None else [])]
    bad = [s.key for s in listed if _differs(objects.get(s.key), s)]
    if not bad:
        return []
    return [f"{len(bad)} object(s) the manifest names are missing or differ ({bad[0]}{', …' if len(bad) > 1 else ''})"]


def _foreign(final: FinalDatasetSpec, entry: Entry) -> str | None:
    """Why the bytes at a key of the shard scheme are not the ones a build wrote there, or None when they are
    (or the key is not of the scheme). A build names a shard by its md5 and records that md5 on the object, so
    an object whose recorded md5 is missing or another was written by someone else."""
    name_md5 = shard_name_md5(final, entry.key)
    if name_md5 is None or (entry.md5 is not None and entry.md5.startswith(name_md5)):
        return None
    return f"md5 {short(entry.md5)} where its name says {name_md5}…"


def _sources_now(
    desired: Desired, observed: Observed, view: PlanView
) -> tuple[dict[str, str], list[str], list[Finding], int]:
    """(name -> md5 the compile will read, ids of actions that write a source, findings, total source bytes)."""
    final = desired.final
    assert final is not None and observed.final is not None
    md5s: dict[str, str] = {}
    waits: list[str] = []
    findings: list[Finding] = []
    size = 0
    for source in final.sources:
        ref = ObjectRef(source.store, source.key)
        writer = last_writer(view, ref)
        entry = observed.final.sources.get(source.name)
        if writer is not None and writer.md5 is not None:
            md5s[source.name], size = writer.md5, size + writer.size
            waits.append(writer.id)
        elif entry is not None and entry.md5 is not None:
            md5s[source.name], size = entry.md5, size + entry.size
        else:
            why = "is not in S3 and nothing in this plan puts it there" if entry is None else "has no known md5"
            findings.append(
                Finding(FindingKind.MISSING, SCOPE, str(ref), f"final dataset source {source.name!r} {why}")
            )
    return md5s, waits, findings, size


def _shard_delete(final: FinalDatasetSpec, entry: Entry, why: str, *, guarded: bool = True) -> Action:
    """A delete of a key this dataset wrote, If-Match the ETag seen. `guarded`: it runs after the compile and
    reads the manifest then in place first, keeping a key it names; a repair runs before, unguarded."""
    # Guarded, the manifest is the source: read first, a key it names is kept.
    return delete_action(SCOPE, ObjectRef(final.store, entry.key), entry, why, final.manifest if guarded else None)


def _expects(final: FinalDatasetSpec, size: int) -> str:
    limits = []
    if final.shard_records:
        limits.append(f"{final.shard_records:,} records")
    if final.shard_bytes:
        limits.append(human_bytes(final.shard_bytes))
    shards = f"shards of at most {' / '.join(limits)}" if limits else "one shard per split"
    splits = ", ".join(f"{name} {ratio:.0%}" for name, ratio in final.splits)
    return (
        f"compiles {len(final.sources)} source(s), {human_bytes(size)}, into {shards} per split ({splits}) "
        f"under {final.prefix}{{split}}/; each shard uploaded and verified as it is written, unchanged shards "
        f"not uploaded again; then the export {final.compiled_key}, the manifest last"
    )


def final_pass(desired: Desired, observed: Observed, view: PlanView) -> None:
    """`plan_final` on any view of the plan: it reads only the actions that write the final dataset's sources."""
    final, seen = desired.final, observed.final
    if final is None or seen is None:
        return
    md5s, waits, findings, size = _sources_now(desired, observed, view)
    published: Published | None = None
    reasons: list[str] = []
    if seen.manifest.content is None:
        reasons.append(f"not published yet (no {final.manifest_key})")
    else:
        try:
            published = parse(seen.manifest.content)
        except ManifestError as exc:
            reasons.append(f"the published manifest cannot be followed ({exc})")
    if published is not None:
        reasons += _recipe_reasons(final, published.recipe)
        if len(md5s) == len(final.sources):
            reasons += _source_reasons(final, published, md5s)
        reasons += _integrity_reasons(published, seen.objects)
    named = {s.key: s for s in published.shards} if published is not None else {}
    written = published.written() if published is not None else frozenset()
    own = {final.manifest_key, final.compiled_key}
    actions: list[Action] = []
    edges: list[tuple[str, str]] = []
    # Only keys this dataset wrote are ever deleted: what a manifest names or its history lists, and keys of
    # its shard scheme (an interrupted build's). Anything else under the prefix is someone else's.
    ours: list[Entry] = []
    for key in sorted(seen.objects):
        if key in own:
            continue
        if key in written or shard_name_md5(final, key) is not None:
            ours.append(seen.objects[key])
        else:
            findings.append(
                Finding(
                    FindingKind.UNMANAGED,
                    SCOPE,
                    str(ObjectRef(final.store, key)),
                    f"under the final dataset's prefix {final.prefix} but written by no build of it: left alone",
                )
            )
    if reasons and len(md5s) == len(final.sources):
        compile_id = action_id(ActionKind.COMPILE, final.manifest)
        repairs: list[Action] = []
        superseded: list[Action] = []
        for entry in ours:
            foreign = _foreign(final, entry)
            if foreign is not None and entry.etag is not None:
                # Other bytes at a key a build writes: the rebuild would yield the same key and must not
                # overwrite them blind. Deleted first, If-Match exactly the bytes seen, so a change since is refused.
                why = (
                    f"holds other bytes than this dataset wrote ({foreign}): deleted, If-Match these bytes, before "
                    "the rebuild writes the key again"
                )
                repairs.append(_shard_delete(final, entry, why, guarded=False))
                continue
            why = (
                "previous build's shard: deleted once the new manifest is in place, unless the new build has it"
                if entry.key in named
                else "written by an earlier build that no manifest names now: deleted once the new manifest is in "
                "place, unless the new build has it"
            )
            superseded.append(_shard_delete(final, entry, why))
        then = (
            f"; then {len(superseded)} superseded shard(s) deleted once the new manifest is in place, unless it "
            "names them (counted apart from --max-delete, under --max-superseded)"
            if superseded
            else ""
        )
        manifest = seen.manifest.entry
        actions.append(
            Action(
                id=compile_id,
                kind=ActionKind.COMPILE,
                change=Change.CREATE if manifest is None else Change.UPDATE,
                mapping=SCOPE,
                target=final.manifest,
                size=size,
                reason=f"{'; '.join(reasons)}: {_expects(final, size)}{then}",
                precondition=Precondition(
                    target_absent=manifest is None,
                    target_etag=manifest.etag if manifest is not None else None,
                    source_md5=build_id(final, md5s),  # the sources must still be these when it runs
                ),
            )
        )
        actions += [*repairs, *superseded]
        edges += [(writer, compile_id) for writer in waits]
        edges += [(repair.id, compile_id) for repair in repairs]
        edges += [(compile_id, delete.id) for delete in superseded]
    elif not reasons and published is not None:
        for entry in ours:
            if entry.key not in named:
                actions.append(_shard_delete(final, entry, "written by an earlier build that no manifest names now"))
        local = seen.local_manifest
        if local.content != seen.manifest.content and seen.manifest.entry is not None:
            published_entry = seen.manifest.entry
            actions.append(
                Action(
                    id=action_id(ActionKind.DOWNLOAD, final.manifest_local),
                    kind=ActionKind.DOWNLOAD,
                    change=Change.CREATE if local.entry is None else Change.UPDATE,
                    mapping=SCOPE,
                    source=final.manifest,
                    target=final.manifest_local,
                    size=published_entry.size,
                    md5=published_entry.md5,
                    reason="the kept local copy of the manifest is "
                    + ("missing" if local.entry is None else "not the published one"),
                    precondition=transfer_precondition(published_entry, local.entry, local_source=False),
                )
            )
    view.add(actions, edges, findings)


plan_final = on_plan(final_pass)


def _final_deletes(desired: Desired, plan: Plan) -> list[Action]:
    """Deletes of this pass: the final dataset's prefix is its own, so no mapping's prune rules apply.

    Those after the compile read the manifest then in place first (their source); a repair before it may only
    be of a key of the shard scheme whose bytes, as the plan saw them, are not the ones the name carries.
    """
    final = desired.final
    if final is None:
        return []
    return [
        a
        for a in plan.actions
        if a.kind is ActionKind.DELETE
        and a.mapping == SCOPE
        and a.target.store == final.store
        and a.target.key.startswith(final.prefix)
        and a.target.key not in (final.manifest_key, final.compiled_key)
        and (a.source == final.manifest or (a.source is None and _repairs(final, a)))
    ]


def _repairs(final: FinalDatasetSpec, delete: Action) -> bool:
    name_md5 = shard_name_md5(final, delete.target.key)
    return name_md5 is not None and not (delete.md5 or "").startswith(name_md5)


def final_deletes(desired: Desired, plan: Plan) -> set[tuple[str, str]]:
    return {(a.target.store, a.target.key) for a in _final_deletes(desired, plan)}


def superseded_deletes(desired: Desired, plan: Plan) -> set[tuple[str, str]]:
    """The shard deletes that read the manifest in place first and keep what it names: shards a verified build
    superseded (or an interrupted one left). `--max-superseded` counts them, apart from `--max-delete`."""
    final = desired.final
    if final is None:
        return set()
    return {(a.target.store, a.target.key) for a in _final_deletes(desired, plan) if a.source == final.manifest}
