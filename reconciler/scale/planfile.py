"""A streamed plan written as the saved-plan file, a piece at a time: the same bytes `plan.serialize.dumps` writes.

The file is `serialize.to_dict`'s document, indented by orjson as `dumps` does: the envelope (version,
digests, summary, limits, counts) is dumped once with a marker where each of the three arrays goes, and
the arrays are written element by element in their place, each element indented as it would be inside
the whole document. So `pixel apply FILE` reads it with the one reader there is, and a plan small enough
to hold in memory gives a byte-identical file either way (tests/unit/scale/).

The guard digest covers the findings, which are streamed: it is hashed as they are written, over the
same canonical text `serialize.guard_digest` builds. The file is written under a temporary name beside
its destination and renamed into place after an fsync, as `commands.planfile.dump` does: a crash (even
SIGKILL) leaves no file under the destination name, and the temporary one is cut off mid-array, which
no reader accepts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from reconciler.model import Action, Finding
from reconciler.paths import atomic_file
from reconciler.plan import savedfile
from reconciler.plan.action_check import action_ok, edge_ok
from reconciler.plan.guards import GuardLimits
from reconciler.plan.serialize import (
    FORMAT_VERSION,
    PlanFileError,
    _limits_dict,
    _pixel_version,
    action_to_dict,
    validate,
)
from reconciler.scale.planner import StreamedPlan

_CANONICAL: dict[str, Any] = {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False}
# Set by tests and the benchmark only: called with the count of array elements written so far.
Progress = Callable[[int], None]


def finding_dict(finding: Finding) -> dict[str, str]:
    return {"kind": finding.kind.value, "mapping": finding.mapping, "key": finding.key, "message": finding.message}


def _marker(name: str) -> str:
    return f"\x00pixel-streamed-{name}\x00"


def _envelope(streamed: StreamedPlan, limits: GuardLimits) -> dict[str, Any]:
    """`serialize.to_dict` with each array a marker and the guard digest still to be computed."""
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "pixel_version": _pixel_version(),
        "spec_digest": streamed.spec_digest,
        "applyable": streamed.applyable,
        "summary": {name: {"count": t.count, "bytes": t.bytes} for name, t in streamed.tallies.items()},
        "actions": _marker("actions"),
        "edges": _marker("edges"),
        "findings": _marker("findings"),
        "errors": list(streamed.errors),
        "guard_limits": _limits_dict(limits),
        "object_counts": dict(sorted(streamed.object_counts.items())),
    }
    if streamed.targets:
        data["targets"] = list(streamed.targets)
    data["guard_digest"] = "0" * 64
    return data


class GuardDigest:
    """`serialize.guard_digest`'s sha256, fed the findings one at a time: the findings come first in its
    canonical text (its keys are sorted), the rest is known before writing starts."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._hash = hashlib.sha256(b'{"findings":[')
        self._first = True
        rest = {name: data[name] for name in ("guard_limits", "object_counts", "spec_digest")}
        if "targets" in data:
            rest["targets"] = data["targets"]
        self._tail = "]," + json.dumps(rest, **_CANONICAL)[1:]

    def add(self, finding: dict[str, str]) -> None:
        text = json.dumps(finding, **_CANONICAL)
        self._hash.update((text if self._first else "," + text).encode("utf-8"))
        self._first = False

    def hexdigest(self) -> str:
        self._hash.update(self._tail.encode("utf-8"))
        return self._hash.hexdigest()


def _checked_actions(actions: Iterable[Action]) -> Iterator[dict[str, Any]]:
    for action in actions:
        data = action_to_dict(action)
        if not action_ok(data):
            # The schema's own message, naming the action: the full check of a one-action plan.
            validate({"actions": [data], "edges": []}, source="plan being written")
            raise PlanFileError(f"plan being written: action {action.id} is not valid")
        yield data


def _checked_edges(edges: Iterable[tuple[str, str]]) -> Iterator[list[str]]:
    for before, after in edges:
        edge = [before, after]
        if not edge_ok(edge):
            raise PlanFileError(f"plan being written: edge {before} -> {after} is not valid")
        yield edge


def write_streamed(
    streamed: StreamedPlan, path: Path, *, limits: GuardLimits | None = None, progress: Progress | None = None
) -> None:
    """Write `streamed` to `path` as a saved plan, atomically, never holding its actions in memory: byte for byte
    the framed file `pixel plan -out` writes (plan/savedfile.py), its first line's findings streamed into it."""
    data = _envelope(streamed, limits or GuardLimits())
    # The envelope alone, arrays empty, is what the schema checks (the elements are checked one by one).
    validate({**data, "actions": [], "edges": [], "findings": []}, source="plan being written")
    header = {name: value for name, value in data.items() if name not in ("actions", "edges")}
    head = orjson.dumps(header)
    digest = GuardDigest(data)
    written = [0]

    def counted(values: Iterable[Any]) -> Iterator[bytes]:
        for value in values:
            yield orjson.dumps(value)
            written[0] += 1
            if progress is not None:
                progress(written[0])

    with atomic_file(path, refuse=PlanFileError, what="plan file") as out:
        before, rest = head.split(orjson.dumps(_marker("findings")), 1)
        out.write(before + b"[")
        for number, finding in enumerate(streamed.findings()):
            item = finding_dict(finding)
            digest.add(item)
            out.write((b"," if number else b"") + orjson.dumps(item))
            written[0] += 1
            if progress is not None:
                progress(written[0])
        before, _ = rest.rsplit(b'"' + b"0" * 64 + b'"', 1)
        out.write(b"]" + before + orjson.dumps(digest.hexdigest()) + b",\n")
        out.write(savedfile.ACTIONS_OPEN)
        out.writelines(savedfile.framed(counted(_checked_actions(streamed.actions())), savedfile.ACTIONS_CLOSE))
        out.write(savedfile.EDGES_OPEN)
        out.writelines(savedfile.framed(counted(_checked_edges(streamed.edges())), savedfile.EDGES_CLOSE))
