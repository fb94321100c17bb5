"""plan(desired, observed) -> Plan. Pure: no I/O, no clock, no randomness.

The first pass: for each mapping and each relative key, the pair (local entry,
remote entry) is classified and the mapping's authority picks the step, both by
the rules of `reconciler.rules`; this module turns the step into one action or
one finding, and holds back the keys pixel must not act on (`_held_back`).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator, Mapping

from reconciler.model import (
    Action,
    ActionKind,
    Authority,
    Change,
    Desired,
    Entry,
    Finding,
    FindingKind,
    MappingObservation,
    MappingSpec,
    ObjectRef,
    Observed,
    Plan,
    Precondition,
)
from reconciler.rules import STEPS, PairState, Step, classify, prunes
from reconciler.units import human_bytes


def short(md5: str | None) -> str:
    return f"{md5[:8]}…" if md5 else "unknown"


def action_id(kind: ActionKind, ref: ObjectRef) -> str:
    return f"{kind.value}:{ref.store}:{ref.key}"


def transfer_precondition(src: Entry, dst: Entry | None, *, local_source: bool) -> Precondition:
    """What an upload, download or copy checks when it runs: the target as planned, the source unchanged."""
    return Precondition(
        target_absent=dst is None,
        target_etag=dst.etag if dst is not None else None,
        source_etag=src.etag,
        source_size=src.size,
        source_mtime_ns=src.mtime_ns if local_source else None,
        source_md5=src.md5,
    )


def _on_observed(
    kind: ActionKind,
    change: Change,
    mapping: str,
    target: ObjectRef,
    entry: Entry,
    reason: str,
    *,
    md5: str | None,
    source: ObjectRef | None = None,
    precondition: Precondition | None = None,
) -> Action:
    """An action on the object observed as `entry` (its size): a read that checks or learns it, or its delete."""
    return Action(
        action_id(kind, target),
        kind,
        change,
        mapping,
        target,
        reason,
        source=source,
        size=entry.size,
        md5=md5,
        precondition=precondition or Precondition(),
    )


def verify_action(
    target: ObjectRef, mapping: str, entry: Entry, reason: str, source: ObjectRef | None = None
) -> Action:
    """A read of the object's recorded md5 and size, which must be `entry`'s, before something trusts it."""
    return _on_observed(ActionKind.VERIFY, Change.READ, mapping, target, entry, reason, md5=entry.md5, source=source)


def _transfer(
    spec: MappingSpec,
    rel: str,
    src: Entry,
    dst: Entry | None,
    *,
    push: bool,
    reason: str,
) -> Action:
    local_ref = ObjectRef(spec.local_store, spec.local_key(rel))
    remote_ref = ObjectRef(spec.s3_store, spec.remote_key(rel))
    source, target = (local_ref, remote_ref) if push else (remote_ref, local_ref)
    kind = ActionKind.UPLOAD if push else ActionKind.DOWNLOAD
    pre = transfer_precondition(src, dst, local_source=push)
    return Action(
        id=action_id(kind, target),
        kind=kind,
        change=Change.CREATE if dst is None else Change.UPDATE,
        mapping=spec.name,
        source=source,
        target=target,
        size=src.size,
        md5=src.md5,
        reason=reason,
        precondition=pre,
    )


def delete_action(mapping: str, ref: ObjectRef, entry: Entry, reason: str, source: ObjectRef | None = None) -> Action:
    """A delete of the object observed as `entry`, If-Match its ETag: an edit since the plan fails the delete
    instead of being lost. `source`, when given, is read first (a manifest whose keys are kept)."""
    if_match = Precondition(target_etag=entry.etag)
    return _on_observed(
        ActionKind.DELETE, Change.DELETE, mapping, ref, entry, reason, md5=entry.md5, source=source,
        precondition=if_match,
    )


def rehash_action(mapping: str, ref: ObjectRef, entry: Entry, reason: str) -> Action:
    """A read of an S3 object whose md5 is unknown (what it learns, so none is planned), to record it; the object
    must still be the one observed."""
    unchanged = Precondition(target_etag=entry.etag, source_etag=entry.etag)
    return _on_observed(ActionKind.REHASH, Change.READ, mapping, ref, entry, reason, md5=None, precondition=unchanged)


def _rehash(spec: MappingSpec, rel: str, entry: Entry) -> Action:
    return rehash_action(
        spec.name,
        ObjectRef(spec.s3_store, spec.remote_key(rel)),
        entry,
        f"md5 unknown (ETag {entry.etag or '?'} is not an md5); read the object and record its md5",
    )


def _differs_reason(src: Entry, dst: Entry) -> str:
    if src.md5 and dst.md5:
        return f"content differs: md5 {short(src.md5)} ≠ {short(dst.md5)}"
    return f"size differs: {src.size} ≠ {dst.size} bytes"


def _is_sorted(entries: Mapping[str, Entry]) -> bool:
    return all(map(operator.lt, entries, itertools.islice(entries, 1, None)))


def _pairs(obs: MappingObservation) -> Iterator[tuple[str, Entry | None, Entry | None]]:
    """(key, local entry, remote entry) for every relative key of either side, in sorted key order.

    Listings usually arrive sorted (S3 lists in key order, and so does a local walk unless a name
    sorts before "/"): then the two sides are merged as two sorted streams, with no lookups and no
    list of all the keys. Otherwise the keys are sorted and looked up.
    """
    local, remote = obs.local, obs.remote
    if not (_is_sorted(local) and _is_sorted(remote)):
        keys = list(local)
        keys += (k for k in remote if k not in local)
        keys.sort()
        for rel in keys:
            yield rel, local.get(rel), remote.get(rel)
        return
    lefts, rights = iter(local.items()), iter(remote.items())
    left, right = next(lefts, None), next(rights, None)
    while left is not None and right is not None:
        if left[0] == right[0]:
            yield left[0], left[1], right[1]
            left, right = next(lefts, None), next(rights, None)
        elif left[0] < right[0]:
            yield left[0], left[1], None
            left = next(lefts, None)
        else:
            yield right[0], None, right[1]
            right = next(rights, None)
    while left is not None:
        yield left[0], left[1], None
        left = next(lefts, None)
    while right is not None:
        yield right[0], None, right[1]
        right = next(rights, None)


def _safe_local_key(rel: str) -> bool:
    return not rel.startswith("/") and "\0" not in rel and ".." not in rel.split("/")


def _parents(rel: str) -> Iterator[str]:
    """ "a", "a/b" for "a/b/c": the directories a local file at `rel` needs."""
    at = rel.find("/")
    while at != -1:
        yield rel[:at]
        at = rel.find("/", at + 1)


def unobserved(obs: MappingObservation, rel: str) -> str | None:
    """Why `rel` is unknown on a side (it lies in a gap of that side's listing), or None when both were seen."""
    for side, gaps in (("local", obs.local_gaps), ("S3", obs.remote_gaps)):
        for gap in gaps:
            if gap.covers(rel):
                where = f"{gap.rel!r}" if gap.rel else "the mapping's root"
                return (
                    f"the {side} side could not be observed completely ({where}: {gap.reason}), so this key's "
                    f"{side} state is unknown: nothing is uploaded, downloaded or deleted here"
                )
    return None


def _held_back(spec: MappingSpec, obs: MappingObservation) -> Callable[[str], str | None] | None:
    r"""The keys of one mapping pixel must not act on, and why; None when there are none (the common case).

    Every such rule lives here, each a reason a key gets a finding instead of an action:
    - unobserved: the key lies where a listing or read failed (absent there means unknown, not absent);
    - pull only: the key cannot be a local path ('..', NUL, absolute), or it would have to be a file and
      a directory at once (S3 holds `a` and `a/b`);
    - push only: the server stored the key under another name (SeaweedFS turns '\' into '/').
    """
    rules: list[Callable[[str], str | None]] = []
    if obs.local_gaps or obs.remote_gaps:
        rules.append(lambda rel: unobserved(obs, rel))
    if spec.authority is Authority.S3:
        rules.append(
            lambda rel: (
                None
                if _safe_local_key(rel)
                else "cannot be mirrored as a local file (absolute, '..' or NUL in the key); skipped"
            )
        )
        clashes = _file_dir_clashes(obs.remote, obs.local)
        if clashes:
            rules.append(lambda rel: _clash(rel, clashes))
    else:
        renamed = _renamed_by_server(obs)
        if renamed:
            rules.append(renamed.get)
    if not rules:
        return None

    def why(rel: str) -> str | None:
        for rule in rules:
            if (reason := rule(rel)) is not None:
                return reason
        return None

    return why


def _file_dir_clashes(*sides: Mapping[str, Entry]) -> set[str]:
    """Keys that are also the directory of another key, on either side (S3 holds `a` and `a/b`)."""
    seen: set[str] = set()
    clashes: set[str] = set()
    for side in sides:
        for key in side:
            directory = key
            while (at := directory.rfind("/")) != -1:
                directory = directory[:at]
                if directory in seen:
                    break  # it and every directory above it were looked at already: one lookup per directory
                seen.add(directory)
                if any(directory in other for other in sides):
                    clashes.add(directory)
    return clashes


def _clash(rel: str, clashes: set[str]) -> str | None:
    name = rel if rel in clashes else next((p for p in _parents(rel) if p in clashes), None)
    if name is None:
        return None
    return (
        f"{name!r} is a file and also a directory (keys under {name + '/'!r}): a local tree cannot hold both, "
        "so none of them is mirrored; rename one side"
    )


def _renamed_by_server(obs: MappingObservation) -> dict[str, str]:
    r"""Local keys with '\' that S3 lists only under the '/' spelling (same size and content), and back.

    A server that rewrites key names (SeaweedFS stores `a\b` as `a/b`) would otherwise get the upload
    again and again, or a move between two names it treats as one, failing forever.
    """
    out: dict[str, str] = {}
    for rel, entry in obs.local.items():
        if "\\" not in rel or rel in obs.remote:
            continue
        stored = rel.replace("\\", "/")
        twin = obs.remote.get(stored)
        if twin is None or stored in obs.local or twin.size != entry.size:
            continue
        if twin.md5 is not None and entry.md5 is not None and twin.md5 != entry.md5:
            continue
        why = (
            f"the server stored {rel!r} as {stored!r} (it does not keep '\\' in key names): pixel cannot keep "
            "this name there, so it neither uploads it again nor deletes or moves the stored copy; "
            "rename the local file"
        )
        out[rel] = why
        out[stored] = why
    return out


def plan_mapping(spec: MappingSpec, obs: MappingObservation) -> Iterator[Action | Finding]:
    """One mapping's actions and findings, key by key in key order, yielded as they are decided: the in-memory
    planner collects them, the streaming one (reconciler/scale/) spills them as they come."""
    push = spec.authority is Authority.LOCAL
    authority = spec.authority
    held_back = _held_back(spec, obs)
    for rel, local, remote in _pairs(obs):
        if local is not None and remote is not None and local.md5 is not None and local.md5 == remote.md5:
            continue  # in sync (PairState.SYNCED): the common case, nothing to do whatever the authority
        if held_back is not None and (why := held_back(rel)) is not None:
            yield Finding(FindingKind.PROBLEM, spec.name, f"{spec.s3_store}:{spec.remote_key(rel)}", why)
            continue
        state = classify(local, remote)
        step = STEPS[state, authority]
        src, dst = (local, remote) if push else (remote, local)
        if step is Step.PUSH or step is Step.PULL:
            assert src is not None
            reason = f"new file ({human_bytes(src.size)})" if dst is None else _differs_reason(src, dst)
            yield _transfer(spec, rel, src, dst, push=push, reason=reason)
        elif step is Step.REHASH:
            assert remote is not None  # only the S3 side can have an unknown md5
            yield _rehash(spec, rel, remote)
        elif step is Step.ABSENT:
            assert dst is not None
            kept = spec.release_local or not prunes(spec)
            if push and kept and dst.md5 is None:
                # An S3-only object pixel keeps: learn its md5, or manifests, status and verify never know it.
                yield _rehash(spec, rel, dst)
            if push and spec.release_local:
                # Released local copies leave S3 as the only copy by design: absence is not a deletion.
                continue
            yield _absent_from_source(spec, rel, dst, push=push)
        elif step is Step.CONFLICT:
            yield _report_only(spec, rel, state, local, remote)


def _absent_from_source(spec: MappingSpec, rel: str, dst: Entry, *, push: bool) -> Action | Finding:
    """A key only the non-authoritative side has: deleted only where the mapping says so explicitly.

    Push deletes S3 objects under `prune: true`; pull deletes local files only under `prune_local: true`
    (a local delete is never implied by `prune`).
    """
    side = "local tree" if push else "bucket"
    dst_store = spec.s3_store if push else spec.local_store
    dst_key = spec.remote_key(rel) if push else spec.local_key(rel)
    ref = ObjectRef(dst_store, dst_key)
    if prunes(spec):  # the ownership rule's: prune on a push, prune_local on a pull
        how = f"{dst_store} is pruned here" if push else "local files are pruned here (prune_local: true)"
        return delete_action(spec.name, ref, dst, f"not in the {side}; {how}")
    rule = "prune (prune: true deletes it)" if push else "prune local files (prune_local: true deletes it)"
    why = f"not in the {side}; left alone because mapping {spec.name!r} does not {rule}"
    return Finding(FindingKind.UNMANAGED, spec.name, str(ref), why)


def _report_only(spec: MappingSpec, rel: str, state: PairState, local: Entry | None, remote: Entry | None) -> Finding:
    where = f"{spec.s3_store}:{spec.remote_key(rel)}"
    if state is PairState.LOCAL_ONLY:
        why = "local only; authority is none, so nothing is uploaded"
    elif state is PairState.S3_ONLY:
        why = "S3 only; authority is none, so nothing is downloaded"
    else:
        assert local is not None and remote is not None
        why = f"out of sync: local md5 {short(local.md5)} ≠ S3 md5 {short(remote.md5)}; authority is none"
    return Finding(FindingKind.CONFLICT, spec.name, where, why)


def protect_error(spec: MappingSpec, deletes: int) -> str | None:
    """The first pass's error for a protected mapping its `deletes` would prune, or None."""
    if not spec.protect or not deletes:
        return None
    return (
        f"mapping {spec.name!r} is protected (protect: true) but the plan would delete "
        f"{deletes} object(s) under {spec.s3_store}:{spec.s3_prefix}"
    )


def first_pass(desired: Desired, observed: Observed, errors: list[str]) -> Iterator[tuple[str, Action | Finding]]:
    """(mapping name, action or finding) of the first pass, in plan order: the observation's problems (mapping
    ""), then each observed mapping's keys compared side by side. A protected mapping's error goes to `errors`."""
    for problem in observed.problems:
        yield "", Finding(FindingKind.PROBLEM, "", problem.where, problem.message)
    for spec in desired.mappings:
        obs = observed.mappings.get(spec.name)
        if obs is None:
            continue
        deletes = 0
        for item in plan_mapping(spec, obs):
            if isinstance(item, Action) and item.kind is ActionKind.DELETE:
                deletes += 1
            yield spec.name, item
        if (error := protect_error(spec, deletes)) is not None:
            errors.append(error)


def plan_mappings(desired: Desired, observed: Observed) -> Plan:
    """The first pass: each mapping's keys compared side by side, one action or finding per key."""
    actions: list[Action] = []
    findings: list[Finding] = []
    errors: list[str] = []
    for _, item in first_pass(desired, observed, errors):
        if isinstance(item, Finding):
            findings.append(item)
        else:
            actions.append(item)
    return Plan(
        actions=tuple(actions),
        edges=(),
        findings=tuple(findings),
        spec_digest=desired.spec_digest,
        errors=tuple(errors),
        targets=desired.targets,
    )
