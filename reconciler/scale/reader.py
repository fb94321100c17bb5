"""A saved plan file read into a spill, an element at a time: a plan of ten million actions reviewed in
bounded memory.

Any saved plan file is read, whichever planner wrote it and however it is indented. The top-level object
is parsed value by value (`json.JSONDecoder.raw_decode` over a buffer refilled from the file), and each
element of `actions`, `edges` and `findings` is checked (`action_check`), turned into the planner's own
value and written to the spill. Then the file gets the checks `serialize.from_dict` makes: the envelope
against the schema, one id per action, every edge naming an action, the guard digest (hashed as the
findings stream by), `applyable` against `errors`, and the summary against the actions counted.
A file failing any of them is refused whole, as `pixel apply FILE` refuses it. Edges come back sorted
(the spill keeps them so), which is the order both planners write them in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from reconciler.keys import printable
from reconciler.model import Finding, FindingKind, Plan
from reconciler.plan import serialize
from reconciler.plan.action_check import action_ok, edge_ok
from reconciler.plan.serialize import PlanFileError, action_from_dict, validate
from reconciler.scale.planfile import GuardDigest, finding_dict
from reconciler.scale.planner import SCHEMA, StreamedPlan, Writer, tallies
from reconciler.scale.spill import Spill, key_text, load

_ARRAYS = ("actions", "edges", "findings")
_SPACE = re.compile(r"[ \t\n\r]*")
_CHUNK = 1 << 20


class _Tokens:
    """JSON values from a text file, one at a time, the buffer holding one value plus a chunk at most."""

    def __init__(self, handle: IO[str], source: str, chunk: int) -> None:
        self._handle = handle
        self._chunk = chunk
        self._source = source
        self._buf = ""
        self._pos = 0
        self._decoder = json.JSONDecoder()

    def _fill(self) -> bool:
        chunk = self._handle.read(self._chunk)
        if not chunk:
            return False
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space ("" at the end of the file)."""
        while True:
            self._pos = _SPACE.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf) or not self._fill():
                return self._buf[self._pos : self._pos + 1]

    def expect(self, *chars: str) -> str:
        found = self.peek()
        if not found or found not in chars:
            raise self.error(f"expected {' or '.join(repr(c) for c in chars)}")
        self._pos += 1
        return found

    def value(self) -> Any:
        while True:
            self.peek()
            try:
                found, end = self._decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._fill():
                    continue  # the value goes on past the buffer
                raise self.error(exc.msg) from exc
            if end == len(self._buf) and self._fill():
                continue  # a number at the end of the buffer may go on in the next chunk
            self._pos = end
            return found

    def at_end(self) -> bool:
        return self.peek() == ""

    def error(self, what: str) -> PlanFileError:
        return PlanFileError(f"{self._source}: not JSON ({what})")


def _elements(tokens: _Tokens) -> Iterator[Any]:
    tokens.expect("[")
    if tokens.peek() == "]":
        tokens.expect("]")
        return
    while True:
        yield tokens.value()
        if tokens.expect(",", "]") == "]":
            return


def read_into(path: Path, spill: Spill, *, chunk: int = _CHUNK) -> StreamedPlan:
    """The saved plan at `path` as a `StreamedPlan` in `spill`; PlanFileError when `pixel apply` would refuse it.

    `chunk`: characters read at a time (tests make it tiny, so values straddle the reads)."""
    source = str(path)
    db = spill.db
    for statement in SCHEMA:
        db.execute(statement)
    out = Writer(db)
    try:
        with Path(path).open(encoding="utf-8") as handle:
            envelope = _parse(_Tokens(handle, source, chunk), out, source)
    except FileNotFoundError as exc:
        raise PlanFileError(f"plan file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"plan file {path} cannot be read: {exc}") from exc
    validate(envelope, source=source)
    return _checked(envelope, out, spill, source)


def _parse(tokens: _Tokens, out: Writer, source: str) -> dict[str, Any]:
    """The top-level object: the arrays' elements go to `out` as they are read, the rest is returned."""
    envelope: dict[str, Any] = {}
    tokens.expect("{")
    if tokens.peek() == "}":
        tokens.expect("}")
    else:
        while True:
            name = tokens.value()
            if not isinstance(name, str):
                raise tokens.error("a key must be a string")
            tokens.expect(":")
            if name in _ARRAYS and tokens.peek() == "[":
                for index, item in enumerate(_elements(tokens)):
                    _add(out, name, index, item, source)
                envelope[name] = []
            else:
                envelope[name] = tokens.value()
            if tokens.expect(",", "}") == "}":
                break
    if not tokens.at_end():
        raise tokens.error("text after the plan")
    return envelope


def _add(out: Writer, name: str, index: int, item: Any, source: str) -> None:
    if name == "actions":
        if not action_ok(item):
            validate({"actions": [item], "edges": []}, source=source)  # the schema's message, naming the action
            raise PlanFileError(f"{source}: not a valid pixel plan at actions/{index}")
        out.action(action_from_dict(item))
    elif name == "edges":
        if not edge_ok(item):
            raise PlanFileError(f"{source}: not a valid pixel plan at edges/{index}")
        out.edge(item[0], item[1])
    else:
        keys = ("kind", "mapping", "key", "message")
        if not (isinstance(item, dict) and set(item) == set(keys) and all(isinstance(item[k], str) for k in keys)):
            raise PlanFileError(f"{source}: not a valid pixel plan at findings/{index}")
        try:
            kind = FindingKind(item["kind"])
        except ValueError as exc:
            raise PlanFileError(f"{source}: not a valid pixel plan at findings/{index}/kind") from exc
        out.finding(Finding(kind, item["mapping"], item["key"], item["message"]))


def _checked(envelope: dict[str, Any], out: Writer, spill: Spill, source: str) -> StreamedPlan:
    db = spill.db
    twice = db.execute("SELECT id FROM actions GROUP BY id HAVING count(*) > 1 LIMIT 1").fetchone()
    if twice is not None:
        raise PlanFileError(f"{source}: not a valid pixel plan: two actions share one id")
    unknown = db.execute(
        "SELECT before, after FROM edges WHERE NOT EXISTS (SELECT 1 FROM actions WHERE id = before) "
        "OR NOT EXISTS (SELECT 1 FROM actions WHERE id = after) LIMIT 1"
    ).fetchone()
    if unknown is not None:
        edge = printable(f"{key_text(unknown[0])} -> {key_text(unknown[1])}")
        raise PlanFileError(f"{source}: not a valid pixel plan: edge {edge} names an unknown action")
    # Hashed from the spill: the limits and counts the digest ends with may come after the findings in the file.
    digest = GuardDigest(envelope)
    for (data,) in db.execute("SELECT data FROM findings ORDER BY seq"):
        digest.add(finding_dict(load(data)))
    if digest.hexdigest() != envelope["guard_digest"]:
        raise PlanFileError(
            f"{source}: the guard digest does not match the spec digest, guard_limits, object_counts and "
            "findings: the file was edited by hand; nothing was touched"
        )
    errors = tuple(envelope["errors"])
    if (not errors) != envelope["applyable"]:
        raise PlanFileError(f"{source}: applyable={envelope['applyable']} contradicts the plan's errors list")
    counted = tallies(db)
    have = {name: [t.count, t.bytes] for name, t in counted.items() if t.count}
    recorded = {name: [t["count"], t["bytes"]] for name, t in envelope["summary"].items() if t["count"]}
    if have != recorded:
        differ = sorted(name for name in have.keys() | recorded.keys() if have.get(name) != recorded.get(name))
        raise PlanFileError(
            f"{source}: the summary contradicts the actions ({', '.join(differ)}): the file was edited by hand; "
            "nothing was touched"
        )
    spill.commit()
    return StreamedPlan(
        spill,
        envelope["spec_digest"],
        errors,
        dict(envelope["object_counts"]),
        tuple(envelope.get("targets", ())),
        actions_count=out.seq,
        findings_count=out.findings,
        tallies=counted,
        limits=serialize.saved(Plan(actions=(), edges=()), envelope).limits,
    )
