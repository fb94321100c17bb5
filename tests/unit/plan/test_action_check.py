"""plan/action_check.py accepts exactly what the plan schema accepts, action by action (Hypothesis)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.plan.action_check import action_ok, edge_ok
from reconciler.schemas import load_schema

SCHEMA = load_schema("plan.schema.json")
ACTION = jsonschema.Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": "#/$defs/action"})
EDGE = jsonschema.Draft202012Validator(SCHEMA["properties"]["edges"]["items"])

MD5 = "0123456789abcdef0123456789abcdef"
# Values that sit on the schema's edges: types JSON Schema tells apart, strings near the patterns.
ODD = st.sampled_from(
    [
        None, True, False, 0, 1, -1, 2.0, 2.5, -0.0, "", "x", MD5, MD5 + "\n", MD5.upper(), MD5[:-1],
        ".pixel/tmp/x", "a/.pixel/tmp/x", "create", "delete", "upload", "release-local", "copy", "read",
        [], {}, ["a", "b"], {"store": "s", "key": "k"}, {"store": "", "key": "k"}, {"store": "s"},
        {"store": "s", "key": "k", "x": 1}, 10**20,
    ]
)


def base_action(kind: str, change: str, key: str) -> dict[str, Any]:
    return {
        "id": f"{kind}:s3:{key}",
        "kind": kind,
        "change": change,
        "mapping": "m",
        "store": "s3",
        "key": key,
        "source": {"store": "disk", "key": key},
        "size": 3,
        "md5": MD5,
        "reason": "r",
        "precondition": {
            "target_absent": change == "create",
            "target_etag": None if change == "create" else MD5,
            "source_etag": None,
            "source_size": 3,
            "source_mtime_ns": 12,
            "source_md5": MD5,
        },
    }


# From the schema itself, so a kind added there (compile was) is held to the same agreement.
KINDS = list(SCHEMA["$defs"]["action"]["properties"]["kind"]["enum"])
CHANGES = ["create", "update", "delete", "read"]


VALID_PRECONDITION: dict[str, st.SearchStrategy[Any]] = {
    "target_absent": st.booleans(),
    "target_etag": st.sampled_from([None, MD5, "etag-1", 7]),
    "source_etag": st.sampled_from([None, "3-12"]),
    "source_size": st.sampled_from([None, 0, 3, -1, 1.0]),
    "source_mtime_ns": st.sampled_from([None, 12, -5]),
    "source_md5": st.sampled_from([None, MD5]),
}
VALID_ACTION: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(["upload:s3:k", "x"]),
    "kind": st.sampled_from(KINDS),
    "change": st.sampled_from(CHANGES),
    "mapping": st.sampled_from(["m", ""]),
    "store": st.sampled_from(["s3", "disk"]),
    "key": st.sampled_from(["a/b", ".pixel/tmp/x", "x/.pixel/tmp/y", ""]),
    "source": st.sampled_from([None, {"store": "disk", "key": "a/b"}]),
    "size": st.sampled_from([0, 3, 2.0, -1, 2.5, True]),
    "md5": st.sampled_from([None, MD5]),
    "reason": st.just("r"),
}


@st.composite
def fields(draw: st.DrawFn, valid: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """Each field mostly valid, sometimes an odd value, sometimes missing; now and then an extra one."""
    out: dict[str, Any] = {}
    for name, strategy in valid.items():
        roll = draw(st.integers(0, 19))
        if roll == 0:
            continue
        out[name] = copy.deepcopy(draw(ODD)) if roll == 1 else draw(strategy)
    if draw(st.integers(0, 19)) == 0:
        out["extra"] = 1
    return out


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(ODD)  # not an action at all
    action = draw(fields(VALID_ACTION))
    if draw(st.integers(0, 19)) != 0:
        action["precondition"] = draw(fields(VALID_PRECONDITION))
    return action


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(mutated())
def test_action_check_agrees_with_the_schema(action: Any) -> None:
    assert action_ok(action) == ACTION.is_valid(action)


def test_every_kind_and_change_pixel_writes_is_accepted_by_both() -> None:
    for kind in KINDS:
        for change in CHANGES:
            action = base_action(kind, change, "k")
            assert action_ok(action) == ACTION.is_valid(action)
    assert action_ok(base_action("upload", "create", "k"))
    refused = base_action("delete", "delete", "k")
    refused["precondition"]["target_etag"] = None
    assert not action_ok(refused) and not ACTION.is_valid(refused)


@given(st.one_of(ODD, st.lists(ODD, max_size=3)))
def test_edge_check_agrees_with_the_schema(edge: Any) -> None:
    assert edge_ok(edge) == EDGE.is_valid(edge)
