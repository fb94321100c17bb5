"""Planner pass: uploads whose content is already in the bucket become server-side moves.

Renaming a prefix locally shows up in the first pass as "upload every new key,
delete every old key". When the content an upload would send (by md5) already
sits, in the same mapping, at a key that is going away (deleted, or overwritten
by another action of this plan), the upload is replaced by a server-side copy
from that key: a MOVE node, which the source's delete or overwrite waits for.
No byte crosses the network.

Swaps and longer cycles (a => b while b => a) would deadlock as "each copy must
read its source before the other overwrites it"; each cycle is broken by
parking one source under a temporary key first (copy a => tmp, b => a,
tmp => b); the move out of pixel's own temporary key removes it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx

from reconciler.model import (
    TEMP_PREFIX,
    Action,
    ActionKind,
    Authority,
    Change,
    Desired,
    Entry,
    MappingSpec,
    ObjectRef,
    Observed,
    Plan,
    Precondition,
)
from reconciler.plan.diff import action_id, short


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    key: str
    entry: Entry
    destroyer: str  # id of the action that deletes or overwrites this key
    fate: str  # "deletes" | "overwrites", for the plan's reason text

    @property
    def md5(self) -> str:
        assert self.entry.md5 is not None  # only known content is a source (`vacated`)
        return self.entry.md5


def vacated(spec: MappingSpec, remote: Mapping[str, Entry], action: Action) -> Source | None:
    """The remote object `action` deletes or overwrites when its md5 is known (a move could read it first), or
    None. Asked per action, so the streaming planner (reconciler/scale/) spills the answers instead."""
    if action.target.store != spec.s3_store:
        return None
    destroys = action.kind is ActionKind.DELETE or (action.kind is ActionKind.UPLOAD and action.change is Change.UPDATE)
    rel = spec.rel_of_remote(action.target.key) if destroys else None
    entry = None if rel is None else remote.get(rel)
    if entry is None or entry.md5 is None:
        return None
    fate = "deletes" if action.kind is ActionKind.DELETE else "overwrites"
    return Source(action.target.key, entry, action.id, fate)


def _vacating(
    spec: MappingSpec, remote: Mapping[str, Entry], actions: Iterable[Action]
) -> dict[str, list[Source]]:
    """Remote keys whose current content this plan destroys, grouped by that content's md5.

    `remote` is keyed relative to the mapping's prefix: only the (few) targets are looked up there,
    rather than re-keying every observed object by its full key.
    """
    by_md5: dict[str, list[Source]] = defaultdict(list)
    for action in actions:
        source = vacated(spec, remote, action)
        if source is not None:
            by_md5[source.md5].append(source)
    for sources in by_md5.values():
        sources.sort(key=lambda s: s.key)
    return by_md5


def move_from(upload: Action, source: Source) -> Action:
    return dataclasses.replace(
        upload,
        id=action_id(ActionKind.MOVE, upload.target),
        kind=ActionKind.MOVE,
        source=ObjectRef(upload.target.store, source.key),
        reason=f"same content (md5 {short(upload.md5)}) as {source.key}, which this plan {source.fate}: "
        "server-side copy, nothing uploaded",
        precondition=dataclasses.replace(
            upload.precondition,
            source_etag=source.entry.etag,
            source_size=source.entry.size,
            source_mtime_ns=None,
        ),
    )


def _temp_key(move: Action) -> str:
    # Deterministic (the planner is pure) and unique per target; the md5 names the content it holds.
    return f"{TEMP_PREFIX}{move.md5}/{move.target.key}"


def break_cycles(
    actions: dict[str, Action], edges: set[tuple[str, str]], reads: dict[str, str], destroyer: dict[str, str]
) -> None:
    """Route one move of each cycle through a temporary key until the move edges form a DAG."""
    if not edges:
        return
    # networkx costs a tenth of a second to import: only plans with moves pay it, not every no-op plan.
    import networkx as nx

    while True:
        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_edges_from(edges)
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            return
        movers = sorted(a for a, _ in cycle if actions[a].kind is ActionKind.MOVE and a in reads)
        node = movers[0]
        move = actions[node]
        assert move.source is not None
        tmp_ref = ObjectRef(move.target.store, _temp_key(move))
        park = Action(
            id=action_id(ActionKind.COPY, tmp_ref),
            kind=ActionKind.COPY,
            change=Change.CREATE,
            mapping=move.mapping,
            source=move.source,
            target=tmp_ref,
            size=move.size,
            md5=move.md5,
            reason=f"park {move.source.key} while keys swap content",
            precondition=Precondition(source_etag=move.precondition.source_etag, source_size=move.size),
        )
        actions[park.id] = park
        actions[node] = dataclasses.replace(
            move,
            source=tmp_ref,
            reason=f"content of {move.source.key}, parked here before the swap; the parked copy is then removed",
            precondition=dataclasses.replace(move.precondition, source_etag=None),
        )
        edges.discard((node, destroyer[reads[node]]))
        edges.add((park.id, destroyer[reads[node]]))
        edges.add((park.id, node))
        del reads[node]


def plan_moves(desired: Desired, observed: Observed, plan: Plan) -> Plan:
    actions: dict[str, Action] = {a.id: a for a in plan.actions}
    order = [a.id for a in plan.actions]
    renamed: dict[str, str] = {}
    move_edges: set[tuple[str, str]] = set()
    delete_reasons: dict[str, list[str]] = defaultdict(list)
    for spec in desired.mappings:
        obs = observed.mappings.get(spec.name)
        if obs is None or spec.authority is not Authority.LOCAL:
            continue
        mine = [a for a in (actions[renamed.get(i, i)] for i in order) if a.mapping == spec.name]
        vacating = _vacating(spec, obs.remote, mine)
        if not vacating:
            continue
        reads: dict[str, str] = {}
        destroyer: dict[str, str] = {}
        for upload in mine:
            if upload.kind is not ActionKind.UPLOAD or upload.md5 is None:
                continue
            # First match only: thousands of identical (say empty) files must not cost a quadratic scan.
            source = next((s for s in vacating.get(upload.md5, ()) if s.key != upload.target.key), None)
            if source is None:
                continue
            move = move_from(upload, source)
            renamed[upload.id] = move.id
            del actions[upload.id]
            actions[move.id] = move
            reads[move.id] = source.key
            destroyer[source.key] = source.destroyer
            if source.destroyer.startswith(f"{ActionKind.DELETE.value}:"):
                delete_reasons[source.destroyer].append(upload.target.key)
        # A destroyer that was itself an upload turned into a move is now known by its move id.
        for key, who in destroyer.items():
            destroyer[key] = renamed.get(who, who)
        spec_edges = {(node, destroyer[key]) for node, key in reads.items()}
        break_cycles(actions, spec_edges, reads, destroyer)
        move_edges |= spec_edges
    if not renamed:
        return plan
    for delete_id, targets in delete_reasons.items():
        action = actions[delete_id]
        actions[delete_id] = dataclasses.replace(action, reason=f"moved to {', '.join(sorted(targets))}")
    old_edges = {(renamed.get(a, a), renamed.get(b, b)) for a, b in plan.edges}
    ordered = [actions[renamed.get(i, i)] for i in order]
    known = {a.id for a in ordered}
    ordered += sorted((a for a in actions.values() if a.id not in known), key=lambda a: a.id)
    return dataclasses.replace(
        plan,
        actions=tuple(ordered),
        edges=tuple(sorted(old_edges | move_edges)),
    )
