"""The one JSON form of a plan: saved plan files and `--format json` output.

`to_dict`/`from_dict` round-trip a `Plan` exactly; `dump`/`load` add the file
and the schema check (schemas/plan.schema.json) on both sides, so a file pixel
wrote is always one pixel can read, and a hand-edited or truncated file is
refused with the reason instead of being half-applied. The form holds keys,
sizes, hashes and ETags only: never a credential, never file content.
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema

from reconciler.errors import UserError
from reconciler.model import (
    Action,
    ActionKind,
    Change,
    Finding,
    FindingKind,
    ObjectRef,
    Plan,
    Precondition,
)
from reconciler.plan.summary import tally
from reconciler.spec.schemas import load_schema

FORMAT_VERSION = 1
SCHEMA = "plan.schema.json"


class PlanFileError(UserError):
    """A saved plan that cannot be read: missing, not JSON, wrong version or off-schema."""


def _pixel_version() -> str:
    try:
        return metadata.version("pixel-reconciler")
    except metadata.PackageNotFoundError:
        return "unknown"


def _ref(ref: ObjectRef | None) -> dict[str, str] | None:
    return None if ref is None else {"store": ref.store, "key": ref.key}


def _precondition(pre: Precondition) -> dict[str, Any]:
    return {
        "target_absent": pre.target_absent,
        "target_etag": pre.target_etag,
        "source_etag": pre.source_etag,
        "source_size": pre.source_size,
        "source_mtime_ns": pre.source_mtime_ns,
        "source_md5": pre.source_md5,
    }


def action_to_dict(action: Action) -> dict[str, Any]:
    return {
        "id": action.id,
        "kind": action.kind.value,
        "change": action.change.value,
        "mapping": action.mapping,
        "store": action.target.store,
        "key": action.target.key,
        "source": _ref(action.source),
        "size": action.size,
        "md5": action.md5,
        "reason": action.reason,
        "precondition": _precondition(action.precondition),
    }


def to_dict(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "pixel_version": _pixel_version(),
        "spec_digest": plan.spec_digest,
        "applyable": plan.applyable,
        "summary": {name: {"count": t.count, "bytes": t.bytes} for name, t in tally(plan).items()},
        "actions": [action_to_dict(a) for a in plan.actions],
        "edges": [[before, after] for before, after in plan.edges],
        "findings": [
            {"kind": f.kind.value, "mapping": f.mapping, "key": f.key, "message": f.message} for f in plan.findings
        ],
        "errors": list(plan.errors),
    }


def validate(data: Any, *, source: str = "plan") -> None:
    """Raise PlanFileError naming the first schema violation (with its JSON path)."""
    if isinstance(data, dict) and data.get("format_version") not in (None, FORMAT_VERSION):
        raise PlanFileError(
            f"{source}: plan format_version {data.get('format_version')!r} is not supported by this pixel "
            f"(it reads version {FORMAT_VERSION}); re-run pixel plan -out with this version"
        )
    validator = jsonschema.Draft202012Validator(load_schema(SCHEMA))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise PlanFileError(f"{source}: not a valid pixel plan at {where}: {error.message}")


def _action_from_dict(d: dict[str, Any]) -> Action:
    pre = d["precondition"]
    src = d["source"]
    return Action(
        id=d["id"],
        kind=ActionKind(d["kind"]),
        change=Change(d["change"]),
        mapping=d["mapping"],
        target=ObjectRef(d["store"], d["key"]),
        reason=d["reason"],
        source=None if src is None else ObjectRef(src["store"], src["key"]),
        size=d["size"],
        md5=d["md5"],
        precondition=Precondition(
            target_etag=pre["target_etag"],
            target_absent=pre["target_absent"],
            source_etag=pre["source_etag"],
            source_size=pre["source_size"],
            source_mtime_ns=pre["source_mtime_ns"],
            source_md5=pre["source_md5"],
        ),
    )


def from_dict(data: Any, *, source: str = "plan") -> Plan:
    validate(data, source=source)
    actions = tuple(_action_from_dict(a) for a in data["actions"])
    ids = {a.id for a in actions}
    if len(ids) != len(actions):
        raise PlanFileError(f"{source}: not a valid pixel plan: two actions share one id")
    for before, after in data["edges"]:
        if before not in ids or after not in ids:
            raise PlanFileError(f"{source}: not a valid pixel plan: edge {before} -> {after} names an unknown action")
    plan = Plan(
        actions=actions,
        edges=tuple((before, after) for before, after in data["edges"]),
        findings=tuple(
            Finding(FindingKind(f["kind"]), f["mapping"], f["key"], f["message"]) for f in data["findings"]
        ),
        spec_digest=data["spec_digest"],
        errors=tuple(data["errors"]),
    )
    # `applyable` is derived; a file claiming otherwise was edited by hand and its errors cannot be trusted.
    if plan.applyable != data["applyable"]:
        raise PlanFileError(f"{source}: applyable={data['applyable']} contradicts the plan's errors list")
    return plan


def dumps(plan: Plan) -> str:
    data = to_dict(plan)
    validate(data, source="plan being written")
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def dump(plan: Plan, path: Path) -> None:
    """Write atomically (temp + fsync + rename) so a crash never leaves half a plan file behind."""
    text = dumps(plan)
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise PlanFileError(f"cannot write the plan file {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def loads(text: str, *, source: str = "plan") -> Plan:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFileError(f"{source}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    return from_dict(data, source=source)


def load(path: Path) -> Plan:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PlanFileError(f"plan file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"plan file {path} cannot be read: {exc}") from exc
    return loads(text, source=str(path))
