"""The one JSON form of a plan: saved plan files and `--format json` output.

`to_dict`/`from_dict` round-trip a `Plan` exactly; `dumps`/`loads` add the text
and the schema check (schemas/plan.schema.json) on both sides, so a file pixel
wrote is always one pixel can read, and a hand-edited or truncated file is
refused with the reason instead of being half-applied. The form holds keys,
sizes, hashes and ETags only: never a credential, never file content.

The schema also holds the rules every action pixel writes keeps: a delete or
release-local names the version it expects (`target_etag`), a create says the
target must be absent (`target_absent`). `loads_saved` is what `pixel apply FILE`
reads: the plan plus the guard limits it was checked with and the object counts
the mass-delete rule divides by, covered by `guard_digest` so that an edit to
them is refused; reconciler/plan/saved_checks.py then derives every guard again
against the current specs. `applyable` and `errors` are never trusted: they are
only checked to agree with each other.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

from reconciler.errors import UserError
from reconciler.keys import printable
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
from reconciler.plan.action_check import action_ok, edge_ok
from reconciler.plan.guards import GuardLimits
from reconciler.plan.summary import tally
from reconciler.schemas import load_schema

if TYPE_CHECKING:
    import jsonschema

FORMAT_VERSION = 2  # 2: guard_limits (with strict), object_counts and guard_digest are recorded
SCHEMA = "plan.schema.json"


class PlanFileError(UserError):
    """A saved plan that cannot be read: missing, not JSON, wrong version or off-schema."""


@dataclass(frozen=True, slots=True)
class SavedPlan:
    """A plan file as `pixel apply FILE` reads it."""

    plan: Plan
    limits: GuardLimits  # the delete guards' limits it was checked with


@cache
def _pixel_version() -> str:
    # Only a plan being written needs it: importing importlib.metadata (and email with it) costs a warm no-op
    # that writes no plan file some 15 ms. Read once a process: each read parses the package's METADATA
    # (~5 ms), and a process that writes many plans (the service, the property tests) paid it every time.
    from importlib import metadata

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


# The guard limits a saved plan records, written and read back by these names. The mass-delete fraction and
# minimum count are no flag's, so they are not recorded: a saved plan is checked with their defaults.
_RECORDED_LIMITS = ("max_delete", "max_superseded", "allow_mass_delete", "strict")


def _limits_dict(limits: GuardLimits) -> dict[str, Any]:
    return {name: getattr(limits, name) for name in _RECORDED_LIMITS}


def _findings(plan: Plan) -> list[dict[str, str]]:
    return [{"kind": f.kind.value, "mapping": f.mapping, "key": f.key, "message": f.message} for f in plan.findings]


def guard_digest(data: dict[str, Any]) -> str:
    """sha256 of what the guards are derived from besides the actions: the spec digest, the limits, the
    per-mapping object counts and the findings (--strict). An edit to any of them no longer matches."""
    covered = {name: data[name] for name in ("spec_digest", "guard_limits", "object_counts", "findings")}
    if "targets" in data:  # a targeted plan's scope check reads them: widening them is an edit too
        covered["targets"] = data["targets"]
    canonical = json.dumps(covered, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# The document's members in the order it lists them; `actions` and `edges` come after the first five.
_HEAD_FIRST = ("format_version", "pixel_version", "spec_digest", "applyable", "summary")


def header_dict(plan: Plan, *, limits: GuardLimits | None = None) -> dict[str, Any]:
    """Every member of the JSON form but `actions` and `edges`, `guard_digest` included: what the framed plan
    file (plan/savedfile.py) writes on its first line."""
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "pixel_version": _pixel_version(),
        "spec_digest": plan.spec_digest,
        "applyable": plan.applyable,
        "summary": {name: {"count": t.count, "bytes": t.bytes} for name, t in tally(plan).items()},
        "findings": _findings(plan),
        "errors": list(plan.errors),
        "guard_limits": _limits_dict(limits or GuardLimits()),
        "object_counts": dict(sorted(plan.object_counts.items())),
    }
    if plan.targets:
        data["targets"] = list(plan.targets)
    data["guard_digest"] = guard_digest(data)
    return data


def to_dict(plan: Plan, *, limits: GuardLimits | None = None) -> dict[str, Any]:
    """The JSON form, with the guard `limits` the plan was checked with (the defaults when not given), so that
    apply derives the guards again from the same limits."""
    head = header_dict(plan, limits=limits)
    data = {name: head.pop(name) for name in _HEAD_FIRST}
    data["actions"] = [action_to_dict(a) for a in plan.actions]
    data["edges"] = [[before, after] for before, after in plan.edges]
    data.update(head)
    return data


def _schema_message(data: Any, error: jsonschema.exceptions.ValidationError) -> str | None:
    """The schema's own wording (`x-message`) for a rule about one action, naming that action."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    message = schema.get("x-message")
    path = list(error.absolute_path)
    if not isinstance(message, str) or len(path) < 2 or path[0] != "actions":
        return None
    action = data["actions"][path[1]]
    if not all(isinstance(action.get(field), str) for field in ("kind", "store", "key")):
        return None  # the plain schema message, which names the path, says more
    return printable(f"saved plan is not applyable: {action['kind']} {action['store']}:{action['key']} {message}")


def validate(data: Any, *, source: str = "plan") -> None:
    """Raise PlanFileError naming the first schema violation (with its JSON path)."""
    if isinstance(data, dict) and data.get("format_version") not in (None, FORMAT_VERSION):
        raise PlanFileError(
            f"{source}: plan format_version {data.get('format_version')!r} is not supported by this pixel "
            f"(it reads version {FORMAT_VERSION}); re-run pixel plan -out with this version"
        )
    if _fast_valid(data):
        return
    import jsonschema  # only for plans the fast checks do not accept: its message names the problem

    validator = jsonschema.Draft202012Validator(load_schema(SCHEMA))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        if phrased := _schema_message(data, error):
            raise PlanFileError(f"{source}: {phrased}; nothing was touched")
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise PlanFileError(f"{source}: not a valid pixel plan at {where}: {error.message}")


@cache
def _envelope_validator() -> Any:
    """The plan schema with the items of `actions` and `edges` left to plan/action_check.py."""
    import jsonschema

    schema = copy.deepcopy(load_schema(SCHEMA))
    schema["properties"]["actions"]["items"] = True
    schema["properties"]["edges"]["items"] = True
    return jsonschema.Draft202012Validator(schema)


def envelope_valid(header: Any) -> bool:
    """True when the schema accepts `header` with `actions` and `edges` of items it accepts, whichever they are.

    Validated with the two arrays empty: the schema says nothing of them but their type and their items
    (tests/unit/plan/test_savedfile.py holds it to that), so the walk over 200,000 items is saved.
    """
    if not isinstance(header, dict) or "actions" in header or "edges" in header:
        return False
    return bool(_envelope_validator().is_valid({**header, "actions": [], "edges": []}))


def _fast_valid(data: Any) -> bool:
    """True when the schema would accept `data`: the envelope by the schema, actions and edges by hand."""
    if not isinstance(data, dict):
        return False
    actions, edges = data.get("actions"), data.get("edges")
    if not isinstance(actions, list) or not isinstance(edges, list):
        return False
    if not all(map(action_ok, actions)) or not all(map(edge_ok, edges)):
        return False
    return envelope_valid({name: value for name, value in data.items() if name not in ("actions", "edges")})


_KIND_OF = {kind.value: kind for kind in ActionKind}
_CHANGE_OF = {change.value: change for change in Change}


def _setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of the frozen dataclass `cls`, for exactly its fields in their order.

    A frozen dataclass's __init__ sets each field through object.__setattr__ by name, which cost half of
    reading a 200,000-action plan; the slot's own descriptor sets it directly. Only sound while `cls` is a
    plain frozen, slotted dataclass: any other shape is refused when this module is imported, so a change to
    the model cannot slip past action_from_dict.
    """
    fields = tuple(f.name for f in dataclasses.fields(cls))
    if fields != names or getattr(cls, "__slots__", None) != names or hasattr(cls, "__post_init__"):
        raise TypeError(f"serialize.action_from_dict builds {cls.__name__}{names}, which now has {fields}")
    return tuple(cls.__dict__[name].__set__ for name in names)


_new = object.__new__
_REF_STORE, _REF_KEY = _setters(ObjectRef, ("store", "key"))
_PRE_TARGET_ETAG, _PRE_TARGET_ABSENT, _PRE_SOURCE_ETAG, _PRE_SOURCE_SIZE, _PRE_SOURCE_MTIME, _PRE_SOURCE_MD5 = _setters(
    Precondition,
    ("target_etag", "target_absent", "source_etag", "source_size", "source_mtime_ns", "source_md5"),
)
_ID, _KIND, _CHANGE, _MAPPING, _TARGET, _REASON, _SOURCE, _SIZE, _MD5, _PRECONDITION = _setters(
    Action, ("id", "kind", "change", "mapping", "target", "reason", "source", "size", "md5", "precondition")
)


def _object_ref(store: str, key: str) -> ObjectRef:
    ref: ObjectRef = _new(ObjectRef)
    _REF_STORE(ref, store)
    _REF_KEY(ref, key)
    return ref


def action_from_dict(d: dict[str, Any]) -> Action:
    """The action of a dict the schema accepts (`action_ok`): equal to what the dataclasses' constructors build
    (tests/unit/plan/test_serialize.py), without their per-field cost."""
    pre = d["precondition"]
    precondition: Precondition = _new(Precondition)
    _PRE_TARGET_ETAG(precondition, pre["target_etag"])
    _PRE_TARGET_ABSENT(precondition, pre["target_absent"])
    _PRE_SOURCE_ETAG(precondition, pre["source_etag"])
    _PRE_SOURCE_SIZE(precondition, pre["source_size"])
    _PRE_SOURCE_MTIME(precondition, pre["source_mtime_ns"])
    _PRE_SOURCE_MD5(precondition, pre["source_md5"])
    src = d["source"]
    action: Action = _new(Action)
    _ID(action, d["id"])
    _KIND(action, _KIND_OF[d["kind"]])
    _CHANGE(action, _CHANGE_OF[d["change"]])
    _MAPPING(action, d["mapping"])
    _TARGET(action, _object_ref(d["store"], d["key"]))
    _REASON(action, d["reason"])
    _SOURCE(action, None if src is None else _object_ref(src["store"], src["key"]))
    _SIZE(action, d["size"])
    _MD5(action, d["md5"])
    _PRECONDITION(action, precondition)
    return action


def from_dict(data: Any, *, source: str = "plan") -> Plan:
    validate(data, source=source)
    actions = tuple(action_from_dict(a) for a in data["actions"])
    ids = {a.id for a in actions}
    if len(ids) != len(actions):
        raise PlanFileError(f"{source}: not a valid pixel plan: two actions share one id")
    for before, after in data["edges"]:
        if before not in ids or after not in ids:
            edge = printable(f"{before} -> {after}")
            raise PlanFileError(f"{source}: not a valid pixel plan: edge {edge} names an unknown action")
    return plan_of(data, actions, tuple((before, after) for before, after in data["edges"]), source=source)


def plan_of(
    header: dict[str, Any],
    actions: tuple[Action, ...],
    edges: tuple[tuple[str, str], ...],
    *,
    source: str,
    counted: dict[str, list[int]] | None = None,
) -> Plan:
    """The plan of a schema-valid document whose action ids are unique and whose edges name them, once what
    it says about itself agrees with what it holds. `counted`: the actions' tally when the caller kept it while
    reading them ({category: [count, bytes]}, categories with no action left out)."""
    plan = Plan(
        actions=actions,
        edges=edges,
        findings=tuple(
            Finding(FindingKind(f["kind"]), f["mapping"], f["key"], f["message"]) for f in header["findings"]
        ),
        spec_digest=header["spec_digest"],
        errors=tuple(header["errors"]),
        object_counts=dict(header["object_counts"]),
        targets=tuple(header.get("targets", ())),
    )
    # What the guards are derived from at apply time besides the actions: an edit there is refused outright.
    if guard_digest(header) != header["guard_digest"]:
        raise PlanFileError(
            f"{source}: the guard digest does not match the spec digest, guard_limits, object_counts and "
            "findings: the file was edited by hand; nothing was touched"
        )
    # `applyable` is derived; a file claiming otherwise was edited by hand and its errors cannot be trusted.
    if plan.applyable != header["applyable"]:
        raise PlanFileError(f"{source}: applyable={header['applyable']} contradicts the plan's errors list")
    if counted is None:
        counted = {name: [t.count, t.bytes] for name, t in tally(plan).items()}
    check_summary(counted, header["summary"], source)
    return plan


def check_summary(counted: Mapping[str, list[int]], summary: Mapping[str, Any], source: str) -> None:
    """A saved plan's summary is what the reviewer counted: PlanFileError unless it is the tally of the actions
    read, [count, bytes] by category. Categories with no action may be left out."""
    have = {name: pair for name, pair in counted.items() if pair[0]}
    recorded = {name: [t["count"], t["bytes"]] for name, t in summary.items() if t["count"]}
    if have != recorded:
        differ = sorted(name for name in have.keys() | recorded.keys() if have.get(name) != recorded.get(name))
        raise PlanFileError(
            f"{source}: the summary contradicts the actions ({', '.join(differ)}): the file was edited by hand; "
            "nothing was touched"
        )


def saved_from_dict(data: Any, *, source: str = "plan") -> SavedPlan:
    return saved(from_dict(data, source=source), data)


def saved(plan: Plan, header: dict[str, Any]) -> SavedPlan:
    """`plan` with the guard limits its checked document records."""
    recorded = header["guard_limits"]
    return SavedPlan(plan, GuardLimits(**{name: recorded[name] for name in _RECORDED_LIMITS}))


def dumps(plan: Plan, *, limits: GuardLimits | None = None) -> str:
    data = to_dict(plan, limits=limits)
    validate(data, source="plan being written")
    # orjson writes what json.dumps(indent=2, ensure_ascii=False) writes, ten times faster.
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"


def _parse(text: str, source: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass  # json reads some text orjson refuses (integers past 64 bits) and words its errors with lines
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFileError(f"{source}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc


def loads(text: str, *, source: str = "plan") -> Plan:
    return from_dict(_parse(text, source), source=source)


def loads_saved(text: str, *, source: str = "plan") -> SavedPlan:
    return saved_from_dict(_parse(text, source), source=source)
