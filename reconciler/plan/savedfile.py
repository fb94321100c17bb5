"""The plan file's layout: one JSON document, framed one action (and one edge) to a line, read as it streams.

`pixel plan -out FILE` writes the JSON form of plan/serialize.py laid out so
that each line is a JSON value of its own:

    {"format_version":2, ... ,"guard_digest":"…",      <- every member but actions and edges
    "actions":[
    {"id":"upload:…", …},                              <- one action a line
    {"id":"delete:…", …}
    ],
    "edges":[
    ["upload:…","write-manifest:…"]
    ]}

It is still one JSON document (`jq`, `json.load` and `pixel show --format json`
read it as they always did), so the file needs no new format version. The
reader parses each line with orjson, checks the action against the schema
(`action_ok`), builds it, counts it for the summary and its id for the edges
while the next line is read, so the parsed dicts die at once instead of a
200,000-action document living whole in memory beside the plan built from it.

Strictness is the whole-document reading's, by construction: the framed reader
returns a plan only when every check `serialize.loads_saved` makes has passed
on exactly the data that reading would parse (the first line is `{members,` so
the document is `{members,"actions":[lines],"edges":[lines]}`; a line is one
JSON value because JSON strings hold no raw newline). On anything else (another
layout, a line that is not one value, any check failing) it answers None and
the caller reads the whole document the old way, which gives the same result or
the same refusal, worded as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from reconciler import collector
from reconciler.model import Action, Plan
from reconciler.plan import serialize
from reconciler.plan.action_check import action_ok, edge_ok
from reconciler.plan.guards import GuardLimits
from reconciler.plan.serialize import PlanFileError, SavedPlan, action_from_dict, action_to_dict
from reconciler.plan.summary import category

ACTIONS_OPEN = b'"actions":[\n'
ACTIONS_CLOSE = b"],\n"
EDGES_OPEN = b'"edges":[\n'
EDGES_CLOSE = b"]}\n"


def _refuse(plan: Plan, limits: GuardLimits | None) -> PlanFileError:
    """The schema's own words for a plan pixel was about to write but may not (a bug upstream)."""
    try:
        serialize.validate(serialize.to_dict(plan, limits=limits), source="plan being written")
    except PlanFileError as exc:
        return exc
    return PlanFileError("plan being written: the framed layout refused what the schema accepts")


def framed(values: Iterable[bytes], close: bytes) -> Iterator[bytes]:
    """`values` one to a line, each but the last with its comma, then `close`."""
    pending: bytes | None = None
    for value in values:
        if pending is not None:
            yield pending + b",\n"
        pending = value
    if pending is not None:
        yield pending + b"\n"
    yield close


def lines(plan: Plan, *, limits: GuardLimits | None = None) -> Iterator[bytes]:
    """The plan file, a line at a time, each part checked against the schema before it is handed on."""
    header = serialize.header_dict(plan, limits=limits)
    if not serialize.envelope_valid(header):
        raise _refuse(plan, limits)
    yield orjson.dumps(header)[:-1] + b",\n"
    yield ACTIONS_OPEN

    def actions() -> Iterator[bytes]:
        for action in plan.actions:
            data = action_to_dict(action)
            if not action_ok(data):
                raise _refuse(plan, limits)
            yield orjson.dumps(data)

    def edges() -> Iterator[bytes]:
        for before, after in plan.edges:
            edge = [before, after]
            if not edge_ok(edge):
                raise _refuse(plan, limits)
            yield orjson.dumps(edge)

    yield from framed(actions(), ACTIONS_CLOSE)
    yield EDGES_OPEN
    yield from framed(edges(), EDGES_CLOSE)


class _Unframed(Exception):
    """Not the framed layout, or a document only the whole-document reading may word the refusal of."""


def _items(rows: Iterator[bytes], close: bytes) -> Iterator[Any]:
    """The JSON values of the framed lines up to `close`."""
    row = next(rows, b"")
    if row == close:
        return
    while True:
        if row.endswith(b",\n"):
            value, last = row[:-2], False
        elif row.endswith(b"\n"):
            value, last = row[:-1], True
        else:
            raise _Unframed
        try:
            yield orjson.loads(value)
        except orjson.JSONDecodeError:
            raise _Unframed from None
        row = next(rows, b"")
        if last:
            if row != close:
                raise _Unframed
            return


def _read(rows: Iterator[bytes], source: str) -> SavedPlan:
    first = next(rows, b"")
    if not (first.startswith(b"{") and first.endswith(b",\n")):
        raise _Unframed
    try:
        header = orjson.loads(first[:-2] + b"}")
    except orjson.JSONDecodeError:
        raise _Unframed from None
    # Not empty: `{,` would read as `{}` here but is no JSON document whole.
    if not isinstance(header, dict) or not header or header.get("format_version") != serialize.FORMAT_VERSION:
        raise _Unframed
    if not serialize.envelope_valid(header) or next(rows, b"") != ACTIONS_OPEN:
        raise _Unframed
    actions: list[Action] = []
    ids: set[str] = set()
    counted: dict[str, list[int]] = {}
    for data in _items(rows, ACTIONS_CLOSE):
        if not action_ok(data):
            raise _Unframed
        action = action_from_dict(data)
        if action.id in ids:
            raise _Unframed
        ids.add(action.id)
        actions.append(action)
        slot = counted.setdefault(category(action), [0, 0])
        slot[0] += 1
        slot[1] += action.size
    if next(rows, b"") != EDGES_OPEN:
        raise _Unframed
    edges: list[tuple[str, str]] = []
    for edge in _items(rows, EDGES_CLOSE):
        if not edge_ok(edge) or edge[0] not in ids or edge[1] not in ids:
            raise _Unframed
        edges.append((edge[0], edge[1]))
    if next(rows, None) is not None:
        raise _Unframed
    try:
        plan = serialize.plan_of(header, tuple(actions), tuple(edges), source=source, counted=counted)
    except PlanFileError:
        raise _Unframed from None
    return serialize.saved(plan, header)


def read(rows: Iterable[bytes], *, source: str) -> SavedPlan | None:
    """The saved plan of a framed file's lines (each with its newline), or None when the whole document must be
    read instead (another layout, or a refusal that reading words)."""
    with collector.paused():
        try:
            return _read(iter(rows), source)
        except _Unframed:
            return None
