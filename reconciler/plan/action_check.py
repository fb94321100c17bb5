"""The saved plan's per-action schema rules as plain Python: what makes 200,000 actions checkable in seconds.

jsonschema walks each action through its generic keyword machinery (about 0.2 ms
an action): a 200,000-action plan took most of a minute to read back. These
functions accept exactly what `schemas/plan.schema.json`'s `$defs/action` and
`edges` items accept, with JSON Schema's meanings (an integer is also a float
with no fraction and never a boolean; `pattern` is an unanchored `re.search`, so
`$` also matches before a final newline; `const true` is only `true`).
tests/unit/test_action_check.py proves the equivalence with Hypothesis on mutated
actions. serialize.validate uses them only to accept: anything they reject goes
through the schema itself, whose message names the problem.
"""

from __future__ import annotations

import re
from typing import Any

_MD5 = re.compile(r"^[0-9a-f]{32}$")
_TMP = re.compile(r"^\.pixel/tmp/")
KINDS = frozenset(
    {"upload", "download", "copy", "move", "delete", "rehash", "verify", "release-local", "write-manifest", "compile"}
)
CHANGES = frozenset({"create", "update", "delete", "read"})
ACTION_KEYS = frozenset(
    {"id", "kind", "change", "mapping", "store", "key", "source", "size", "md5", "reason", "precondition"}
)
PRECONDITION_KEYS = frozenset(
    {"target_absent", "target_etag", "source_etag", "source_size", "source_mtime_ns", "source_md5"}
)
_REF_KEYS = frozenset({"store", "key"})
_DELETES = frozenset({"delete", "release-local"})
_CREATES = frozenset({"upload", "download", "copy", "move", "write-manifest", "compile"})


def _integer(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return True
    if kind is bool:
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _md5(value: Any) -> bool:
    return value is None or (type(value) is str and _MD5.search(value) is not None)


def _ref(value: Any) -> bool:
    return (
        type(value) is dict
        and value.keys() == _REF_KEYS
        and type(value["store"]) is str
        and value["store"] != ""
        and type(value["key"]) is str
    )


def action_ok(action: Any) -> bool:
    """True exactly when `action` is valid against the schema's `$defs/action`.

    One flat function (no helper per field on the common path): it runs once per action.
    """
    if type(action) is not dict or action.keys() != ACTION_KEYS:
        return False
    kind, key, pre, size = action["kind"], action["key"], action["precondition"], action["size"]
    source = action["source"]
    if not (
        type(kind) is str
        and kind in KINDS
        and type(action["change"]) is str
        and action["change"] in CHANGES
        and type(action["id"]) is str
        and action["id"] != ""
        and type(action["mapping"]) is str
        and type(action["store"]) is str
        and action["store"] != ""
        and type(key) is str
        and (source is None or _ref(source))
        and (type(size) is int or _integer(size))
        and size >= 0
        and _md5(action["md5"])
        and type(action["reason"]) is str
        and type(pre) is dict
        and pre.keys() == PRECONDITION_KEYS
    ):
        return False
    target_etag, source_size, mtime = pre["target_etag"], pre["source_size"], pre["source_mtime_ns"]
    if not (
        type(pre["target_absent"]) is bool
        and (target_etag is None or type(target_etag) is str)
        and (pre["source_etag"] is None or type(pre["source_etag"]) is str)
        and (source_size is None or (_integer(source_size) and source_size >= 0))
        and (mtime is None or _integer(mtime))
        and _md5(pre["source_md5"])
    ):
        return False
    if kind in _DELETES and type(target_etag) is not str:
        return False  # a delete runs If-Match on the version the plan saw
    creates = kind in _CREATES and action["change"] == "create" and _TMP.search(key) is None
    return not creates or pre["target_absent"] is True


def edge_ok(edge: Any) -> bool:
    """True exactly when `edge` is valid against the schema's `edges` items."""
    return isinstance(edge, list) and len(edge) == 2 and isinstance(edge[0], str) and isinstance(edge[1], str)
