"""The pair-state rules: what a local/S3 pair is, and what the planner does about it under each authority.

Pure and dependency-free (the standard library, `reconciler.model` and `reconciler.globs`). Every consumer
of pair state asks here: the planner (`plan/diff.py`), actor manifests and `pixel status` (`manifest_status`),
the saved-plan checks (which steps a mapping's authority allows) and `pixel explain`.

So does every consumer of ownership (the end of this file): which keys a mapping owns (its prefixes, its
include/exclude, its min_size, never pixel's own space) and whether a plan may delete there (prune, protect,
overlap). The observer, the saved-plan checks, the manifest writer, `pixel verify`, `pixel explain`, the spec
checks and the delete guards all ask `owned_rel`/`Selection`/`delete_refusal` rather than strip a prefix
themselves (tests/unit/test_ownership.py fails when a module does).
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from reconciler.globs import compile_glob
from reconciler.model import (
    PIXEL_PREFIX,
    ActionKind,
    Authority,
    Desired,
    Entry,
    MappingSpec,
    Ownership,
    S3StoreSpec,
    StoreSpec,
    TierSpec,
)


class PairState(enum.StrEnum):
    """One relative key of a mapping, both sides considered."""

    SYNCED = "synced"  # both sides, the same known md5
    LOCAL_ONLY = "local_only"
    S3_ONLY = "s3_only"
    DIFFERENT = "different"  # both sides, content differs: md5s differ, or sizes do where an md5 is unknown
    UNKNOWN = "unknown"  # both sides, same size, an md5 unknown on a side: only a rehash can tell


def classify(local: Entry | None, remote: Entry | None) -> PairState:
    """The state of a pair; at least one side is present."""
    if local is None:
        return PairState.S3_ONLY
    if remote is None:
        return PairState.LOCAL_ONLY
    if local.md5 is not None and remote.md5 is not None:
        return PairState.SYNCED if local.md5 == remote.md5 else PairState.DIFFERENT
    return PairState.UNKNOWN if local.size == remote.size else PairState.DIFFERENT


class Step(enum.StrEnum):
    """What the planner does with a pair."""

    NOTHING = "nothing"
    PUSH = "push"  # upload the local file: create, or update what S3 holds
    PULL = "pull"  # download the object: create, or update the local file
    REHASH = "rehash"  # read the S3 object and record its md5, then decide
    # Only the non-authoritative side has it: deleted where the mapping prunes that side, else a finding.
    # On a push an object pixel keeps (release_local, or no prune) with an unknown md5 is rehashed first.
    ABSENT = "absent"
    CONFLICT = "conflict"  # report only (authority: none): a finding, nothing changes


_DIRECTED: dict[Authority, dict[PairState, Step]] = {
    Authority.LOCAL: {
        PairState.LOCAL_ONLY: Step.PUSH,
        PairState.S3_ONLY: Step.ABSENT,
        PairState.DIFFERENT: Step.PUSH,
        PairState.UNKNOWN: Step.REHASH,
    },
    Authority.S3: {
        PairState.LOCAL_ONLY: Step.ABSENT,
        PairState.S3_ONLY: Step.PULL,
        PairState.DIFFERENT: Step.PULL,
        PairState.UNKNOWN: Step.REHASH,
    },
    Authority.NONE: {state: Step.CONFLICT for state in PairState if state is not PairState.SYNCED},
}

STEPS: dict[tuple[PairState, Authority], Step] = {
    (state, authority): Step.NOTHING if state is PairState.SYNCED else _DIRECTED[authority][state]
    for state in PairState
    for authority in Authority
}


def steps_of(authority: Authority) -> frozenset[Step]:
    """Every step a mapping with `authority` can take: what a saved plan's actions may come from."""
    return frozenset(step for (_, a), step in STEPS.items() if a is authority)


class Side(enum.StrEnum):
    LOCAL = "local"
    S3 = "s3"
    SCRATCH = "scratch"  # pixel's own space of the S3 store (a swap's parked copy)
    DELETED = "deleted"  # the side a prune deletes from: S3 on a push, local on a pull


# The actions a step becomes, as (kind, target side, source side or None when there is none to check):
# what the diff plans, and what the later passes make of it (moves turn a push's delete and upload of
# the same md5 into a server-side move, parking a swap's source in scratch; release-local follows a push;
# a verify reads what a rehash or release trusts).
STEP_ACTIONS: dict[Step, tuple[tuple[ActionKind, Side, Side | None], ...]] = {
    Step.NOTHING: (),
    Step.CONFLICT: (),
    Step.PUSH: (
        (ActionKind.UPLOAD, Side.S3, Side.LOCAL),
        (ActionKind.MOVE, Side.S3, Side.S3),
        (ActionKind.COPY, Side.SCRATCH, Side.S3),
    ),
    Step.PULL: ((ActionKind.DOWNLOAD, Side.LOCAL, Side.S3),),
    Step.REHASH: ((ActionKind.REHASH, Side.S3, Side.LOCAL), (ActionKind.VERIFY, Side.S3, Side.LOCAL)),
    Step.ABSENT: ((ActionKind.DELETE, Side.DELETED, None),),
}
RELEASE_ACTION = (ActionKind.RELEASE_LOCAL, Side.LOCAL, Side.S3)  # push with release_local: true only


def allowed_actions(authority: Authority, *, release_local: bool) -> dict[ActionKind, tuple[Side, Side | None]]:
    """The action kinds a mapping may hold, with the sides of their target and source, from its steps."""
    out = {kind: (target, source) for step in steps_of(authority) for kind, target, source in STEP_ACTIONS[step]}
    if release_local and Step.PUSH in steps_of(authority):
        out[RELEASE_ACTION[0]] = RELEASE_ACTION[1:]
    return out


class ManifestStatus(enum.StrEnum):
    """The seed's status vocabulary of an actor manifest's image and of `pixel status`'s counts."""

    SYNCED = "synced"
    LOCAL_ONLY = "local_only"
    S3_ONLY = "s3_only"
    OUT_OF_SYNC = "out_of_sync"


# UNKNOWN is not "synced": equal sizes do not make equal content, and the plan still has a rehash to run.
# The seed's format has four statuses (schemas/actor-manifest.schema.json), so it reads "out_of_sync"
# until the rehash records the md5; the next manifest then says synced or keeps out_of_sync.
MANIFEST_STATUS: dict[PairState, ManifestStatus] = {
    PairState.SYNCED: ManifestStatus.SYNCED,
    PairState.LOCAL_ONLY: ManifestStatus.LOCAL_ONLY,
    PairState.S3_ONLY: ManifestStatus.S3_ONLY,
    PairState.DIFFERENT: ManifestStatus.OUT_OF_SYNC,
    PairState.UNKNOWN: ManifestStatus.OUT_OF_SYNC,
}

STATUSES = tuple(ManifestStatus)


def manifest_status(local: Entry | None, remote: Entry | None) -> ManifestStatus:
    return MANIFEST_STATUS[classify(local, remote)]


# --- Ownership ----------------------------------------------------------------------------------------------


def strip_prefix(prefix: str, key: str) -> str | None:
    """`key` relative to `prefix`; None outside it, and for the prefix itself (a prefix is no key of its own)."""
    return key[len(prefix) :] or None if key.startswith(prefix) else None


def prefixes_overlap(a: str, b: str) -> bool:
    """One prefix holds the other: a key could lie under both."""
    return a.startswith(b) or b.startswith(a)


@dataclass(frozen=True, slots=True)
class OwnSpace:
    """pixel's own keys below one base key, relative to it: the prefixes they start with, and single keys."""

    prefixes: tuple[str, ...] = ()
    keys: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.prefixes or self.keys)

    def holds(self, rel: str) -> bool:
        return rel.startswith(self.prefixes) or rel in self.keys

    def __or__(self, other: OwnSpace) -> OwnSpace:
        return OwnSpace(tuple(sorted({*self.prefixes, *other.prefixes})), self.keys | other.keys)


@functools.lru_cache(maxsize=4096)
def own_space(spec: StoreSpec | None, base: str) -> OwnSpace:
    """pixel's own keys under `base` in the store of `spec`, relative to `base` ("" when all of it is pixel's).

    An S3 store reserves `.pixel/`, its lock's folder and the lock key (`S3StoreSpec.reserves`); a local store
    `.pixel/` at its root, as the delete guards have it.
    """
    prefixes: tuple[str, ...] = (PIXEL_PREFIX,)
    keys: tuple[str, ...] = ()
    if isinstance(spec, S3StoreSpec):
        prefixes, keys = spec.reserved_prefixes(), (spec.lock_key,)
    rel_prefixes = set()
    for prefix in prefixes:
        if prefix.startswith(base):
            rel_prefixes.add(prefix[len(base) :])
        elif base.startswith(prefix):
            rel_prefixes.add("")
    rel_keys = frozenset(rel for k in keys if (rel := strip_prefix(base, k)) is not None)
    return OwnSpace(tuple(sorted(rel_prefixes)), rel_keys)


def own_part(spec: StoreSpec | None, key: str) -> str | None:
    """The part of pixel's own space `key` lies in (`.pixel/`, the lock's folder, the lock key), or None."""
    spaces = spec.reserved_prefixes() if isinstance(spec, S3StoreSpec) else (PIXEL_PREFIX,)
    found = next((space for space in spaces if key.startswith(space)), None)
    if found is None and isinstance(spec, S3StoreSpec) and spec.reserves(key):
        return key  # the lock key itself, at the top of the bucket
    return found


def mapping_own_space(desired: Desired, spec: MappingSpec) -> OwnSpace:
    """The relative keys of a mapping that lie in pixel's own space on either of its sides: a key pixel's on one
    side is the mapping's on neither, so it is never pushed over the lock nor an upload record pulled."""
    return _both_sides(
        desired.stores.get(spec.local_store), spec.local_base, desired.stores.get(spec.s3_store), spec.s3_prefix
    )


@functools.lru_cache(maxsize=4096)
def _both_sides(local: StoreSpec | None, local_base: str, s3: StoreSpec | None, s3_prefix: str) -> OwnSpace:
    # Cached: a saved plan's check asks once per action, and a million actions share a few mappings' answers.
    return own_space(local, local_base) | own_space(s3, s3_prefix)


def _union(patterns: Iterable[str]) -> Callable[[str], re.Match[str] | None] | None:
    """One regex matching where any of the globs matches; None when there are none."""
    compiled = [compile_glob(p) for p in patterns]
    if not compiled:
        return None
    if len(compiled) == 1:
        return compiled[0].match
    return re.compile("|".join(f"(?:{c.pattern})" for c in compiled)).match


class Selection:
    """Which relative keys a mapping owns, its globs compiled once: the observer asks it per listed object.

    A relative key is the mapping's when it is not empty, its include/exclude select it, it is not in pixel's
    own space (`own`) and, when its size is known, it is at least `min_size` or matches `min_size_except`.
    A size of None (a key asked about with no object at hand: `pixel explain`, the spec checks) is not judged
    against min_size.
    """

    __slots__ = ("_exclude", "_exempt", "_include", "_min_size", "_own")

    def __init__(self, spec: MappingSpec, own: OwnSpace | None = None) -> None:
        self._include = _union(spec.include)
        self._exclude = _union(spec.exclude)
        self._exempt = _union(spec.min_size_except)
        self._min_size = spec.min_size
        # Most mappings lie nowhere near .pixel/: no test per key for them.
        self._own = own.holds if own else None

    def globs(self, rel: str) -> bool:
        """The include/exclude globs alone select `rel`."""
        if self._include is not None and self._include(rel) is None:
            return False
        return self._exclude is None or self._exclude(rel) is None

    def __call__(self, rel: str, size: int | None) -> bool:
        if not rel or not self.globs(rel) or (self._own is not None and self._own(rel)):
            return False
        return size is None or size >= self._min_size or (self._exempt is not None and self._exempt(rel) is not None)

    def select(self, base: str, entries: Iterable[Entry]) -> Iterator[tuple[str, Entry]]:
        """(relative key, entry) of each of `entries` (full keys) under `base` the mapping owns.

        `__call__` per listed object, inlined: the observer runs it over a million objects.
        """
        skip = len(base)
        include, exclude, own, exempt, min_size = self._include, self._exclude, self._own, self._exempt, self._min_size
        for entry in entries:
            key = entry.key
            if not key.startswith(base):
                continue
            rel = key[skip:]
            if (
                not rel
                or (include is not None and include(rel) is None)
                or (exclude is not None and exclude(rel) is not None)
                or (own is not None and own(rel))
                or (entry.size < min_size and (exempt is None or exempt(rel) is None))
            ):
                continue
            yield rel, entry


@functools.lru_cache(maxsize=1024)
def selection(spec: MappingSpec) -> Selection:
    """The mapping's `Selection` without own space (asked after it is refused), compiled once per spec."""
    return Selection(spec)


def sides(spec: MappingSpec) -> tuple[tuple[str, str], tuple[str, str]]:
    """(store, base key) of the mapping's S3 side, then of its local side."""
    return (spec.s3_store, spec.s3_prefix), (spec.local_store, spec.local_base)


def under(spec: MappingSpec, store: str, key: str) -> str | None:
    """The relative key of `store:key` when it lies under either side's prefix, selected or not."""
    for side_store, base in sides(spec):
        if side_store == store and (rel := strip_prefix(base, key)) is not None:
            return rel
    return None


def owned_rel(
    spec: MappingSpec, store: str, key: str, size: int | None = None, own: OwnSpace | None = None
) -> str | None:
    """The relative key of `store:key` when the mapping owns it (see `Selection`), else None."""
    rel = under(spec, store, key)
    if rel is None or not selection(spec)(rel, size):
        return None
    return None if own is not None and own.holds(rel) else rel


def owns(desired: Desired, spec: MappingSpec, store: str, key: str, size: int | None = None) -> str | None:
    """`owned_rel` with pixel's own space of both the mapping's stores taken out: the delete guards ask it
    once per delete, so the compiled globs and the own space are cached per mapping."""
    return owned_rel(spec, store, key, size, mapping_own_space(desired, spec))


def prunes(spec: MappingSpec) -> bool:
    """Whether the mapping may delete on its non-authoritative side: S3 under `prune`, local files only under
    `prune_local` (a pull never deletes local files because of `prune` alone)."""
    return spec.prune_local if spec.authority is Authority.S3 else spec.prune


def deleted_side(spec: MappingSpec) -> tuple[str, str]:
    """(store, key prefix) of the side a mapping's prune deletes from."""
    if spec.authority is Authority.S3:
        return spec.local_store, spec.local_base
    return spec.s3_store, spec.s3_prefix


def tier_refusal(tier: TierSpec) -> str | None:
    """Why no plan may delete inside `tier`, or None: a protected or a shared tier is not pixel's to prune."""
    if tier.protect:
        return f"tier {tier.name!r} is protected (protect: true)"
    if tier.ownership is Ownership.SHARED:
        return f"tier {tier.name!r} is shared (ownership: shared): pixel never deletes there"
    return None


def covering(desired: Desired, store: str, key: str) -> list[MappingSpec]:
    """Every mapping with `store:key` under one of its prefixes, whatever its globs: an overlap is judged by
    prefix, so a non-pruning mapping's exclude never opens its keys to another mapping's prune."""
    return [spec for spec in desired.mappings if covers(spec, store, key)]


def covers(spec: MappingSpec, store: str, key: str) -> bool:
    """`store:key` lies under one of the mapping's prefixes (the prefix itself included), whatever its globs.

    Asked of every mapping for every delete: the sides are spelled out rather than built as tuples.
    """
    if store == spec.s3_store and key.startswith(spec.s3_prefix):
        return True
    return store == spec.local_store and key.startswith(spec.local_base)


def delete_refusal(
    desired: Desired, owner: MappingSpec | None, store: str, key: str, size: int | None = None
) -> str | None:
    """Why a delete of `store:key` planned by mapping `owner` (None: no mapping of the specs) may not run, or
    None when it may.

    In this order: pixel's own space is never pruned; the key must be the mapping's (`owns`); the mapping must
    prune that side, not be protected, and own the prefix exclusively (no covering mapping that does not prune,
    or is protected).
    """
    if (space := own_part(desired.stores.get(store), key)) is not None:
        return f"keys under {space} are pixel's own (lock, scratch) and are never pruned"
    if owner is None or under(owner, store, key) is None:
        return "they are not under its prefixes"
    if owns(desired, owner, store, key, size) is None:
        return "they are not its files (its include/exclude or min_size, or pixel's own space, leave them out)"
    if not prunes(owner):
        if owner.authority is Authority.S3:
            return "it does not prune local files (set prune_local: true to let pixel delete there)"
        return "it does not prune (set prune: true to let pixel delete there)"
    if owner.protect:
        return "it is protected (protect: true)"
    others = sorted(
        m.name for m in covering(desired, store, key) if m.name != owner.name and (not prunes(m) or m.protect)
    )
    if others:
        return "it does not own the prefix exclusively: also covered by " + ", ".join(repr(o) for o in others)
    return None
