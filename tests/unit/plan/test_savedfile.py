"""The framed plan file (plan/savedfile.py): one JSON document read a line at a time, exactly as strict as
reading it whole."""

from __future__ import annotations

import dataclasses
import gc
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.commands import planfile
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
from reconciler.plan import savedfile, serialize
from reconciler.plan.guards import GuardLimits
from reconciler.plan.serialize import PlanFileError, SavedPlan
from reconciler.schemas import load_schema
from tests.unit.plan.test_serialize import rich_plan

MD5S = st.none() | st.sampled_from(["0123456789abcdef0123456789abcdef", "f" * 32])
# Keys and names with what JSON escapes (quotes, backslashes, newlines, control and non-ASCII characters).
TEXT = st.text(alphabet=st.sampled_from('ab/."\\\n\t\x00é☃𝄞,[]{}'), max_size=8)
_CREATES = {ActionKind.UPLOAD, ActionKind.DOWNLOAD, ActionKind.COPY, ActionKind.MOVE, ActionKind.WRITE_MANIFEST,
            ActionKind.COMPILE}


@st.composite
def actions(draw: st.DrawFn, index: int) -> Action:
    kind = draw(st.sampled_from(list(ActionKind)))
    change = draw(st.sampled_from(list(Change)))
    key = draw(TEXT | st.just(".pixel/tmp/x"))
    etag = draw(st.none() | TEXT)
    if kind in (ActionKind.DELETE, ActionKind.RELEASE_LOCAL) and etag is None:
        etag = "etag"
    absent = draw(st.booleans()) or (kind in _CREATES and change is Change.CREATE)
    return Action(
        id=f"{kind.value}:{index}:{key}",
        kind=kind,
        change=change,
        mapping=draw(TEXT),
        target=ObjectRef(draw(st.sampled_from(["s3", "disk", "é"])), key),
        reason=draw(TEXT),
        source=draw(st.none() | st.builds(ObjectRef, st.sampled_from(["s3", "disk"]), TEXT)),
        size=draw(st.integers(0, 1 << 62)),
        md5=draw(MD5S),
        precondition=Precondition(
            target_etag=etag,
            target_absent=absent,
            source_etag=draw(st.none() | TEXT),
            source_size=draw(st.none() | st.integers(0, 1 << 40)),
            source_mtime_ns=draw(st.none() | st.integers(-(1 << 62), 1 << 62)),
            source_md5=draw(MD5S),
        ),
    )


@st.composite
def saved_plans(draw: st.DrawFn) -> SavedPlan:
    count = draw(st.integers(0, 6))
    acts = tuple(draw(actions(i)) for i in range(count))
    ids = [a.id for a in acts]
    edges = tuple(draw(st.lists(st.tuples(st.sampled_from(ids), st.sampled_from(ids)), max_size=4))) if ids else ()
    findings = tuple(
        draw(st.lists(st.builds(Finding, st.sampled_from(list(FindingKind)), TEXT, TEXT, TEXT), max_size=2))
    )
    plan = Plan(
        actions=acts,
        edges=edges,
        findings=findings,
        spec_digest=draw(TEXT),
        errors=tuple(draw(st.lists(TEXT, max_size=2))),
        object_counts=draw(st.dictionaries(TEXT, st.integers(0, 1000), max_size=2)),
        targets=tuple(draw(st.lists(TEXT.filter(bool), max_size=2))),
    )
    limits = GuardLimits(
        max_delete=draw(st.integers(0, 500)),
        max_superseded=draw(st.integers(0, 500)),
        allow_mass_delete=draw(st.booleans()),
        strict=draw(st.booleans()),
    )
    return SavedPlan(plan, limits)


def _write(path: Path, saved: SavedPlan) -> None:
    """The file `planfile.dump` writes, without its fsync (hundreds of examples)."""
    path.write_bytes(b"".join(savedfile.lines(saved.plan, limits=saved.limits)))


def _framed(path: Path) -> SavedPlan | None:
    with path.open("rb") as handle:
        return savedfile.read(handle, source=str(path))


def _whole(path: Path) -> SavedPlan:
    """How pixel read a plan file before it was framed: the text whole, through plan/serialize.py."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PlanFileError(f"plan file {path} cannot be read: {exc}") from exc
    return serialize.loads_saved(text, source=str(path))


def _outcome(read: Callable[[Path], SavedPlan], path: Path) -> SavedPlan | str:
    try:
        return read(path)
    except PlanFileError as exc:
        return f"refused: {exc}"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(saved=saved_plans())
def test_a_written_plan_reads_back_framed_and_is_the_json_form(tmp_path: Path, saved: SavedPlan) -> None:
    path = tmp_path / "plan.json"
    _write(path, saved)
    assert _framed(path) == saved  # read by the streaming reader, not the whole-document fallback
    assert planfile.load_saved(path) == saved
    # One JSON document: the data `pixel plan --format json` prints, whatever the layout.
    assert json.loads(path.read_text(encoding="utf-8")) == serialize.to_dict(saved.plan, limits=saved.limits)
    rows = path.read_bytes().splitlines()
    assert len(rows) == 5 + len(saved.plan.actions) + len(saved.plan.edges)  # header, 2 openings, 2 closings


def _edit_line(rows: list[bytes], at: int, edit: Callable[[Any], Any]) -> None:
    """`edit` the JSON value on line `at`: an action, an edge, or the header's members (`{...,`)."""
    row = rows[at]
    comma = row.endswith(b",")
    body = row[:-1] if comma else row
    header = body.startswith(b"{") and comma and row.count(b"\n") == 0 and not _is_json(body)
    try:
        value = json.loads(body + b"}" if header else body)
    except ValueError:
        return  # not one JSON value: the other edits make such lines
    text = json.dumps(edit(value), ensure_ascii=False).encode()
    rows[at] = (text[:-1] if header else text) + (b"," if comma else b"")


def _is_json(text: bytes) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _set(field: str, value: Any) -> Callable[[Any], Any]:
    def edit(data: Any) -> Any:
        if isinstance(data, dict):
            data[field] = value
        return data

    return edit


LINE_EDITS: list[Callable[[list[bytes], int], object]] = [
    lambda rows, at: rows.insert(at, rows[at]),  # a line twice: a duplicate action, or a broken frame
    lambda rows, at: rows.pop(at),  # a line gone
    lambda rows, at: rows.insert(at, rows.pop(0)),  # the header moved
    lambda rows, at: rows.__setitem__(at, rows[at].rstrip(b",")),  # a comma dropped
    lambda rows, at: rows.__setitem__(at, rows[at] + b","),  # a comma added
    lambda rows, at: rows.__setitem__(at, rows[at] + b" "),  # whitespace JSON allows
    lambda rows, at: rows.__setitem__(at, rows[at] + b"\r"),  # an editor's line endings
    lambda rows, at: rows.__setitem__(at, b"{" + rows[at] + b"}"),
    lambda rows, at: rows.__setitem__(at, b"{,"),  # reads as {} if the frame's "{" and "," are taken for granted
    lambda rows, at: rows.__setitem__(at, b"  " + rows[at]),
    lambda rows, at: rows.__setitem__(at, rows[at] + b'"actions":[],'),
    lambda rows, at: rows.__setitem__(at, rows[at].replace(b'"', b"'", 1)),
    lambda rows, at: rows.__setitem__(at, rows[at].replace(b"1", b"100000000000000000000", 1)),  # past 64 bits
    lambda rows, at: rows.__setitem__(at, rows[at].replace(b"a", b"\xff", 1)),  # not UTF-8
    lambda rows, at: rows.__setitem__(at, rows[at][: len(rows[at]) // 2]),
    lambda rows, at: rows.insert(at, b'"edges":['),
    lambda rows, at: rows.insert(at, b"],"),
    lambda rows, at: rows.append(b""),
    lambda rows, at: rows.append(b"{}"),
    lambda rows, at: _edit_line(rows, at, _set("size", 1.0)),  # an integer JSON Schema allows, spelt as a float
    lambda rows, at: _edit_line(rows, at, _set("size", 7)),  # the summary no longer counts it
    lambda rows, at: _edit_line(rows, at, _set("kind", "delete")),
    lambda rows, at: _edit_line(rows, at, _set("id", "x")),
    lambda rows, at: _edit_line(rows, at, _set("extra", 1)),
    lambda rows, at: _edit_line(rows, at, _set("applyable", True)),
    lambda rows, at: _edit_line(rows, at, _set("format_version", 1)),
    lambda rows, at: _edit_line(rows, at, _set("errors", [])),
    lambda rows, at: _edit_line(rows, at, _set("actions", [])),
    lambda rows, at: _edit_line(rows, at, lambda edge: [edge[1], edge[0]] if isinstance(edge, list) else edge),
    lambda rows, at: _edit_line(rows, at, lambda edge: [edge[0], "nowhere"] if isinstance(edge, list) else edge),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    saved=saved_plans(),
    # Line 0, the header, as often as any other.
    edits=st.lists(
        st.tuples(st.sampled_from(LINE_EDITS), st.just(0) | st.integers(0, 1 << 16)), min_size=1, max_size=3
    ),
)
def test_any_edit_is_read_or_refused_exactly_as_the_whole_document_reading_does(
    tmp_path: Path, saved: SavedPlan, edits: list[tuple[Callable[[list[bytes], int], object], int]]
) -> None:
    path = tmp_path / "plan.json"
    _write(path, saved)
    rows = path.read_bytes().split(b"\n")[:-1]
    for edit, at in edits:
        edit(rows, at % len(rows))
    path.write_bytes(b"".join(row + b"\n" for row in rows))
    assert _outcome(planfile.load_saved, path) == _outcome(_whole, path)


def test_a_duplicated_action_is_refused_even_with_the_summary_counting_it(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    planfile.dump(rich_plan(), path)
    rows = path.read_bytes().split(b"\n")
    rows.insert(2, rows[2])  # the upload twice
    data = json.loads(b"\n".join(rows))
    data["summary"]["upload"] = {"count": 2, "bytes": 20}
    header = json.dumps({k: v for k, v in data.items() if k not in ("actions", "edges")}).encode()
    rows[0] = header[:-1] + b","
    path.write_bytes(b"\n".join(rows))
    refused = _outcome(planfile.load_saved, path)
    assert isinstance(refused, str) and "share one id" in refused
    assert refused == _outcome(_whole, path)


def test_a_hand_edited_file_laid_out_another_way_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    planfile.dump(rich_plan(), path)
    path.write_text(json.dumps(json.loads(path.read_text()), indent=2))
    assert _framed(path) is None
    assert planfile.load(path) == rich_plan()


def test_the_envelope_check_may_leave_out_the_arrays() -> None:
    """serialize.envelope_valid validates the document with `actions` and `edges` empty: sound only while the
    schema says nothing of those arrays but their type and their items."""
    properties = load_schema(serialize.SCHEMA)["properties"]
    for name in ("actions", "edges"):
        assert set(properties[name]) <= {"type", "items", "description"}, properties[name]


@pytest.mark.parametrize("enabled", [True, False])
def test_reading_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path, enabled: bool) -> None:
    path = tmp_path / "plan.json"
    planfile.dump(rich_plan(), path)  # the framed layout is what pixel writes
    try:
        (gc.enable if enabled else gc.disable)()
        assert _framed(path) is not None
        assert gc.isenabled() is enabled
        path.write_text("{}")
        assert _framed(path) is None
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


def test_the_fast_builder_refuses_a_model_it_does_not_know() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        store: str
        key: str

        def __post_init__(self) -> None:
            if not self.store:
                raise ValueError("a store is named")

    with pytest.raises(TypeError, match="Checked"):
        serialize._setters(Checked, ("store", "key"))
    with pytest.raises(TypeError, match="ObjectRef"):
        serialize._setters(ObjectRef, ("key", "store"))


@pytest.mark.parametrize("broken", ["action", "edge"])
def test_a_plan_the_schema_refuses_is_not_written(tmp_path: Path, broken: str) -> None:
    plan = rich_plan()
    if broken == "action":
        bad = dataclasses.replace(plan.actions[0], precondition=Precondition(target_absent=False))
        plan = dataclasses.replace(plan, actions=(bad, *plan.actions[1:]))
    else:
        plan = dataclasses.replace(plan, edges=((plan.actions[0].id, 7),))  # type: ignore[arg-type]
    path = tmp_path / "plan.json"
    with pytest.raises(PlanFileError, match="plan being written"):
        planfile.dump(plan, path)
    assert list(tmp_path.iterdir()) == []
