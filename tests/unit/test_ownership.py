"""One ownership rule: which keys a mapping owns, and whether a plan may delete there, live in `rules.py`.

Two nets: an AST scan that fails when a module outside `rules.py`/`model.py` strips a mapping's prefix itself
(`key[len(spec.s3_prefix):]`, `key.startswith(base)` with `base = spec.local_base`), and a property that every
consumer of the rule (the observer, the manifest writer, `pixel verify`, `pixel explain`, the saved-plan checks,
the delete guards) agrees with `rules.owns` on random mappings, keys and sizes.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.apply.manifest_writer import _side
from reconciler.commands.explain import explanation
from reconciler.commands.verify import _managed
from reconciler.globs import compile_glob, matches
from reconciler.model import (
    Action,
    ActionKind,
    Authority,
    Change,
    Desired,
    Entry,
    LocalStoreSpec,
    MappingSpec,
    ObjectRef,
    Observed,
    Plan,
    Precondition,
    S3StoreSpec,
    StoreSpec,
)
from reconciler.observe.observer import _relative
from reconciler.plan.guards import ownership_errors
from reconciler.plan.saved_checks import _mapping_problem
from reconciler.rules import mapping_own_space, owns
from reconciler.stores.memory import MemoryStore

ROOT = Path(__file__).resolve().parents[2] / "reconciler"
# The attributes a mapping's keys are built from: stripping or testing them is the ownership rule's job.
MAPPING_BASES = frozenset({"s3_prefix", "local_base", "local_path"})
RULE_HOMES = frozenset({ROOT / "rules.py", ROOT / "model.py"})


def _mentions_base(node: ast.AST, tainted: set[str]) -> bool:
    return any(
        (isinstance(n, ast.Attribute) and n.attr in MAPPING_BASES) or (isinstance(n, ast.Name) and n.id in tainted)
        for n in ast.walk(node)
    )


def _targets(node: ast.AST) -> Iterator[str]:
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            yield n.id


def _function_findings(func: ast.FunctionDef | ast.AsyncFunctionDef, where: str) -> list[str]:
    """Prefix-stripping on a mapping's bases inside one function: names bound from `spec.s3_prefix` and the like
    (assignments, loop variables, `len` of them) are followed through the function."""
    params = [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]
    # A function handed a mapping and a prefix or base apart (`_on_side(ref, store, prefix, spec)`) strips it.
    of_mapping = any(a.annotation is not None and ast.unparse(a.annotation) == "MappingSpec" for a in params)
    tainted = {a.arg for a in params if of_mapping and ("prefix" in a.arg or "base" in a.arg)}
    lengths: set[str] = set()
    changed = True
    while changed:  # to a fixed point: `base = spec.local_base; skip = len(base)`
        changed = False
        for node in ast.walk(func):
            bound: list[tuple[ast.AST, ast.AST]] = []
            if isinstance(node, ast.Assign):
                bound = [(t, node.value) for t in node.targets]
            elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                bound = [(node.target, node.value)]
            elif isinstance(node, (ast.For, ast.comprehension)):
                bound = [(node.target, node.iter)]
            for target, value in bound:
                is_len = isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "len"
                if _mentions_base(value, tainted):
                    names = set(_targets(target)) - (lengths if is_len else tainted)
                    if names:
                        (lengths if is_len else tainted).update(names)
                        changed = True
    found = []
    for node in ast.walk(func):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "startswith"
            and any(_mentions_base(arg, tainted) for arg in node.args)
        ):
            found.append(f"{where}:{node.lineno}: startswith on a mapping's prefix")
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice) and node.slice.lower is not None:
            lower = node.slice.lower
            by_len = (
                isinstance(lower, ast.Call)
                and isinstance(lower.func, ast.Name)
                and lower.func.id == "len"
                and _mentions_base(lower, tainted)
            )
            if by_len or (isinstance(lower, ast.Name) and lower.id in lengths):
                found.append(f"{where}:{node.lineno}: slices a key by a mapping's prefix")
    return found


def prefix_stripping(source: str, where: str) -> list[str]:
    """Every place in `source` that strips or tests a mapping's prefix by hand."""
    tree = ast.parse(source)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += _function_findings(node, where)
    return sorted(set(found))


def test_no_module_but_rules_strips_a_mapping_prefix() -> None:
    found = [
        hit
        for path in sorted(ROOT.rglob("*.py"))
        if path not in RULE_HOMES
        for hit in prefix_stripping(path.read_text(), str(path.relative_to(ROOT.parent)))
    ]
    assert found == [], "ask reconciler.rules (owned_rel, Selection, under, strip_prefix) instead:\n" + "\n".join(found)


def test_the_scan_sees_the_ways_the_rule_was_re_derived() -> None:
    # The shapes the six places had before the rule had a home; each must be caught.
    shapes = {
        "direct": "def f(spec, key):\n    return key[len(spec.s3_prefix) :]\n",
        "through a name": (
            "def f(spec, entries):\n    base = spec.local_base\n    for e in entries:\n"
            "        if e.key.startswith(base):\n            yield e.key[len(base) :]\n"
        ),
        "a length kept": (
            "def f(spec, entries):\n    base = spec.local_base\n    skip = len(base)\n"
            "    return [e.key[skip:] for e in entries]\n"
        ),
        "a prefix handed in": ("def f(ref, prefix: str, spec: MappingSpec):\n    return ref.key.startswith(prefix)\n"),
        "a loop over the sides": (
            "def f(spec, key):\n    for store, base in ((spec.s3_store, spec.s3_prefix),):\n"
            "        if key.startswith(base):\n            return key[len(base) :]\n"
        ),
    }
    for name, source in shapes.items():
        assert prefix_stripping(source, name), name
    assert prefix_stripping("def f(tier, key):\n    return key[len(tier.prefix) :]\n", "tier") == []


# --- every consumer agrees with the rule ---------------------------------------------------------------------

_SEGMENTS = st.sampled_from(["a", "b.jsonl", "x.bin", ".pixel", "data", "sub", "lock", "locks", "uploads"])
_RELS = st.lists(_SEGMENTS, min_size=1, max_size=4).map("/".join)
_GLOBS = st.lists(st.sampled_from(["*.jsonl", "**/*.bin", "a/**", "b*", "data/*", "lock"]), max_size=2, unique=True)


@st.composite
def _worlds(draw: st.DrawFn) -> tuple[Desired, MappingSpec]:
    lock = draw(st.sampled_from([".pixel/lock", "locks/pixel.lock", "lock", "data/lock"]))
    spec = MappingSpec(
        name="m",
        local_store="disk",
        local_path=draw(st.sampled_from(["", "data", "data/sub", ".pixel"])),
        s3_store="s3",
        s3_prefix=draw(st.sampled_from(["", "data/", "locks/", ".pixel/", "data/sub/"])),
        include=tuple(draw(_GLOBS)),
        exclude=tuple(draw(_GLOBS)),
        authority=Authority.LOCAL,
        prune=True,
        min_size=draw(st.sampled_from([0, 10])),
        min_size_except=tuple(draw(st.sampled_from([(), ("*.jsonl",)]))),
    )
    stores: dict[str, StoreSpec] = {
        "disk": LocalStoreSpec("disk", "/x"),
        "s3": S3StoreSpec("s3", "bucket", lock_key=lock),
    }
    return Desired(stores=stores, mappings=(spec,)), spec


_OBJECTS = st.dictionaries(_RELS, st.integers(0, 20), max_size=12)


def _reference(desired: Desired, spec: MappingSpec, store: str, key: str, size: int | None) -> str | None:
    """The rule, spelled out once more by hand: the property holds `rules.owns` to the mapping's declaration."""
    base = spec.s3_prefix if store == spec.s3_store else spec.local_base
    if not key.startswith(base) or key == base:
        return None
    rel = key[len(base) :]
    if not matches(rel, spec.include, spec.exclude):
        return None
    s3 = desired.stores["s3"]
    assert isinstance(s3, S3StoreSpec)
    if s3.reserves(spec.remote_key(rel)) or spec.local_key(rel).startswith(".pixel/"):
        return None
    small = size is not None and size < spec.min_size
    if small and not any(compile_glob(p).match(rel) for p in spec.min_size_except):
        return None
    return rel


@settings(max_examples=300, deadline=None)
@given(world=_worlds(), objects=_OBJECTS)
def test_the_rule_is_the_mappings_declaration(world: tuple[Desired, MappingSpec], objects: dict[str, int]) -> None:
    desired, spec = world
    for key, size in objects.items():
        for store in ("s3", "disk"):
            for known in (size, None):
                assert owns(desired, spec, store, key, known) == _reference(desired, spec, store, key, known)


def _entries(objects: dict[str, int]) -> list[Entry]:
    return [Entry(key, size, None) for key, size in sorted(objects.items())]


def _memory(name: str, objects: dict[str, int]) -> MemoryStore:
    store = MemoryStore(name)  # no spec: it lists pixel's own space too, as an S3 Inventory report or a walk does
    for key, size in objects.items():
        store.put(key, b"x" * size)
    return store


def _owned(desired: Desired, spec: MappingSpec, store: str, objects: dict[str, int]) -> dict[str, int]:
    return {rel: size for key, size in objects.items() if (rel := owns(desired, spec, store, key, size)) is not None}


@settings(max_examples=200, deadline=None)
@given(world=_worlds(), objects=_OBJECTS)
def test_the_observer_and_the_manifest_writer_list_what_the_mapping_owns(
    world: tuple[Desired, MappingSpec], objects: dict[str, int]
) -> None:
    desired, spec = world
    own = mapping_own_space(desired, spec)
    for store, base in (("s3", spec.s3_prefix), ("disk", spec.local_base)):
        under = {k: s for k, s in objects.items() if k.startswith(base)}  # what a listing of `base` returns
        expected = _owned(desired, spec, store, under)
        observed = _relative(_entries(under), base, spec, own)
        assert {rel: e.size for rel, e in observed.items()} == expected
        written = _side(_memory(store, under), base, spec, own)
        assert {rel: e.size for rel, e in written.items()} == expected


@settings(max_examples=200, deadline=None)
@given(world=_worlds(), objects=_OBJECTS)
def test_verify_checks_exactly_the_objects_the_mapping_owns(
    world: tuple[Desired, MappingSpec], objects: dict[str, int]
) -> None:
    desired, spec = world
    store = _memory("s3", objects)
    checked = {target.key for target in _managed(desired, cast(Any, {"s3": store}))}
    assert checked == {spec.remote_key(rel) for rel in _owned(desired, spec, "s3", objects)}


@settings(max_examples=200, deadline=None)
@given(world=_worlds(), key=_RELS, store=st.sampled_from(["s3", "disk"]))
def test_explain_calls_a_key_managed_exactly_when_the_mapping_owns_it(
    world: tuple[Desired, MappingSpec], key: str, store: str
) -> None:
    desired, spec = world
    doc = explanation(desired, Observed(mappings={}), Plan((), ()), f"{store}:{key}").doc
    managed = [m["managed"] for m in doc["mappings"]]
    base = spec.s3_prefix if store == "s3" else spec.local_base
    if not key.startswith(base) or key == base:
        assert managed == []
    else:
        assert managed == [owns(desired, spec, store, key) is not None]  # no size at hand: min_size not judged


def _action(kind: ActionKind, target: ObjectRef, source: ObjectRef | None, size: int) -> Action:
    return Action(
        id=f"{kind.value}:{target}",
        kind=kind,
        change=Change.DELETE if kind is ActionKind.DELETE else Change.UPDATE,
        mapping="m",
        target=target,
        source=source,
        size=size,
        md5="0" * 32,
        reason="test",
        precondition=Precondition(target_etag="e", source_etag="e"),
    )


@settings(max_examples=300, deadline=None)
@given(world=_worlds(), rel=_RELS, size=st.integers(0, 20))
def test_the_saved_plan_checks_and_the_guards_allow_exactly_what_the_mapping_owns(
    world: tuple[Desired, MappingSpec], rel: str, size: int
) -> None:
    desired, spec = world
    remote, local = ObjectRef("s3", spec.remote_key(rel)), ObjectRef("disk", spec.local_key(rel))
    owned = owns(desired, spec, "s3", remote.key, size) is not None
    assert owned == (owns(desired, spec, "disk", local.key, size) is not None)  # one relative key, both sides
    upload = _action(ActionKind.UPLOAD, remote, local, size)
    delete = _action(ActionKind.DELETE, remote, None, size)
    assert (_mapping_problem(desired, spec, upload) is None) == owned
    assert (_mapping_problem(desired, spec, delete) is None) == owned
    assert (ownership_errors(desired, Plan((delete,), ())) == []) == owned


# --- the places that disagreed with the rule, one example each ----------------------------------------------

_STORES: dict[str, StoreSpec] = {"disk": LocalStoreSpec("disk", "/x"), "s3": S3StoreSpec("s3", "bucket")}
_FILTERED = MappingSpec(
    "m", "disk", "", "s3", "", include=("*.bin",), prune=True, min_size=10, min_size_except=("small/*",)
)


def test_the_guards_refuse_a_delete_the_mappings_globs_or_min_size_leave_out() -> None:
    desired = Desired(stores=_STORES, mappings=(_FILTERED,))
    excluded = _action(ActionKind.DELETE, ObjectRef("s3", "notes.txt"), None, 100)
    small = _action(ActionKind.DELETE, ObjectRef("s3", "x.bin"), None, 3)
    exempt = _action(ActionKind.DELETE, ObjectRef("s3", "small/x.bin"), None, 3)
    assert ownership_errors(desired, Plan((exempt,), ())) == []
    for refused in (excluded, small):
        (error,) = ownership_errors(desired, Plan((refused,), ()))
        assert "they are not its files (its include/exclude or min_size" in error


def test_verify_leaves_out_objects_below_min_size_and_pixels_own_space() -> None:
    desired = Desired(stores=_STORES, mappings=(_FILTERED,))
    store = _memory("s3", {"big.bin": 20, "tiny.bin": 2, "small/x.bin": 2, ".pixel/uploads/u.bin": 20})
    assert {t.key for t in _managed(desired, cast(Any, {"s3": store}))} == {"big.bin", "small/x.bin"}


def test_explain_does_not_call_the_lock_of_a_bucket_root_mapping_managed() -> None:
    spec = MappingSpec("root", "disk", "", "s3", "", prune=True)
    desired = Desired(stores=_STORES, mappings=(spec,))
    (mapping,) = explanation(desired, Observed(mappings={}), Plan((), ()), "s3:.pixel/lock").doc["mappings"]
    assert mapping["managed"] is False


def test_the_manifest_writer_lists_neither_small_files_nor_pixels_own_space() -> None:
    desired = Desired(stores=_STORES, mappings=(_FILTERED,))
    store = _memory("disk", {"big.bin": 20, "tiny.bin": 2, ".pixel/x.bin": 20})
    assert set(_side(store, "", _FILTERED, mapping_own_space(desired, _FILTERED))) == {"big.bin"}


def test_a_saved_plan_may_not_upload_a_file_below_min_size() -> None:
    desired = Desired(stores=_STORES, mappings=(_FILTERED,))
    upload = _action(ActionKind.UPLOAD, ObjectRef("s3", "tiny.bin"), ObjectRef("disk", "tiny.bin"), 2)
    assert _mapping_problem(desired, _FILTERED, upload) is not None
    assert _mapping_problem(desired, _FILTERED, dataclasses.replace(upload, size=20)) is None
