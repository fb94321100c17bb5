"""The pair-state rules: what a local/S3 pair is, and what the planner does about it under each authority.

Pure and dependency-free (the standard library and `reconciler.model`). Every consumer of pair state
asks here: the planner (`plan/diff.py`), actor manifests and `pixel status` (`manifest_status`), the
saved-plan checks (which steps a mapping's authority allows) and `pixel explain`.
"""

from __future__ import annotations

import enum

from reconciler.model import ActionKind, Authority, Entry


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
