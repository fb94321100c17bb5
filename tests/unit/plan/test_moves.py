"""The moves pass: uploads of content the bucket already holds at a vanishing key become server-side moves."""

from __future__ import annotations

import hashlib

import networkx as nx

from reconciler.apply import ActionRunner, execute
from reconciler.model import (
    TEMP_PREFIX,
    ActionKind,
    Authority,
    Desired,
    LocalStoreSpec,
    MappingSpec,
    Plan,
    S3StoreSpec,
)
from reconciler.observe import StreamingHasher, observe
from reconciler.plan import plan
from reconciler.plan.graph import build_graph
from reconciler.plan.render import render_text
from reconciler.plan.summary import summary_line
from reconciler.stores.memory import MemoryStore


def world(*, prune: bool = True, authority: Authority = Authority.LOCAL) -> Desired:
    return Desired(
        stores={"disk": LocalStoreSpec("disk", "/nowhere"), "s3": S3StoreSpec("s3", "bucket")},
        mappings=(MappingSpec("m", "disk", "src", "s3", "pre/", authority=authority, prune=prune),),
    )


def stores(local: dict[str, bytes], remote: dict[str, bytes]) -> tuple[MemoryStore, MemoryStore]:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    for key, data in local.items():
        disk.put(f"src/{key}", data)
    for key, data in remote.items():
        s3.put(f"pre/{key}", data)
    return disk, s3


def planned(d: Desired, disk: MemoryStore, s3: MemoryStore) -> Plan:
    return plan(d, observe(d, {"disk": disk, "s3": s3}, StreamingHasher()))


def apply(p: Plan, disk: MemoryStore, s3: MemoryStore) -> ActionRunner:
    runner = ActionRunner({"disk": disk, "s3": s3})
    result = execute(build_graph(p), runner, parallelism=8)
    assert result.ok, [o.error for o in result.failed]
    return runner


def kinds(p: Plan) -> list[str]:
    return sorted(a.kind.value for a in p.actions)


def test_renaming_1000_files_plans_1000_moves_and_uploads_nothing() -> None:
    files = {f"old/{i:04}.jsonl": f"record {i}\n".encode() * 20 for i in range(1000)}
    renamed = {k.replace("old/", "new/"): v for k, v in files.items()}
    disk, s3 = stores(renamed, files)
    d = world()
    p = planned(d, disk, s3)
    assert kinds(p).count("move") == 1000 and kinds(p).count("delete") == 1000 and len(p.actions) == 2000
    moves = [a for a in p.actions if a.kind is ActionKind.MOVE]
    assert all(a.source is not None and a.source.key == a.target.key.replace("new/", "old/") for a in moves)
    # Every delete of an old key waits for the move that reads it.
    graph = build_graph(p)
    for move in moves:
        assert move.source is not None
        assert graph.has_edge(move.id, f"delete:s3:{move.source.key}")
    text = render_text(p, d)
    assert "  + pre/old/0007.jsonl => pre/new/0007.jsonl  (move, " in text
    assert "  - pre/old/0007.jsonl  (delete: moved to pre/new/0007.jsonl)" in text
    assert summary_line(p) == "Plan: 0 to upload, 0 to update, 1,000 to move, 1,000 to delete."

    writes_before = s3.bytes_written
    runner = apply(p, disk, s3)
    assert runner.bytes_uploaded == 0
    assert s3.bytes_written == writes_before  # nothing sent through write(): only server-side copies
    assert runner.bytes_copied == sum(len(v) for v in files.values())
    assert s3.keys() == sorted(f"pre/{k}" for k in renamed)
    assert planned(d, disk, s3).actions == ()


def test_move_carries_both_preconditions_from_the_plan() -> None:
    disk, s3 = stores({"b": b"payload"}, {"a": b"payload"})
    p = planned(world(), disk, s3)
    move = next(a for a in p.actions if a.kind is ActionKind.MOVE)
    assert move.precondition.source_etag == hashlib.md5(b"payload").hexdigest()
    assert move.precondition.target_absent
    s3.put("pre/a", b"changed since the plan")
    result = execute(build_graph(p), ActionRunner({"disk": disk, "s3": s3}))
    assert [o.action.kind for o in result.failed] == [ActionKind.MOVE]
    assert [o.action.kind for o in result.skipped] == [ActionKind.DELETE]
    assert s3.get("pre/a") == b"changed since the plan"  # the source survives a failed move


def test_swap_goes_through_a_temporary_key_and_converges() -> None:
    disk, s3 = stores({"a": b"BBBB", "b": b"AAAA"}, {"a": b"AAAA", "b": b"BBBB"})
    d = world()
    p = planned(d, disk, s3)
    assert nx.is_directed_acyclic_graph(build_graph(p))
    assert kinds(p) == ["copy", "move", "move"]
    park = next(a for a in p.actions if a.kind is ActionKind.COPY)
    assert park.target.key.startswith(TEMP_PREFIX)
    runner = apply(p, disk, s3)
    assert runner.bytes_uploaded == 0
    assert s3.get("pre/a") == b"BBBB" and s3.get("pre/b") == b"AAAA"
    assert s3.keys() == ["pre/a", "pre/b"]  # the temporary copy is gone
    assert planned(d, disk, s3).actions == ()


def test_three_way_rotation_converges_without_uploads() -> None:
    disk, s3 = stores({"a": b"3", "b": b"1", "c": b"2"}, {"a": b"1", "b": b"2", "c": b"3"})
    d = world(prune=False)
    p = planned(d, disk, s3)
    assert kinds(p).count("move") == 3 and "upload" not in kinds(p)
    runner = apply(p, disk, s3)
    assert runner.bytes_uploaded == 0
    assert [s3.get(f"pre/{k}") for k in "abc"] == [b"3", b"1", b"2"]
    assert planned(d, disk, s3).actions == ()


def test_overwritten_key_can_feed_a_new_key() -> None:
    # a's old content moves to b while a gets new bytes: b must be copied before a is overwritten.
    disk, s3 = stores({"a": b"fresh", "b": b"original"}, {"a": b"original"})
    d = world()
    p = planned(d, disk, s3)
    by_kind = {a.kind: a for a in p.actions}
    assert set(by_kind) == {ActionKind.MOVE, ActionKind.UPLOAD}
    assert (by_kind[ActionKind.MOVE].id, by_kind[ActionKind.UPLOAD].id) in p.edges
    apply(p, disk, s3)
    assert s3.get("pre/a") == b"fresh" and s3.get("pre/b") == b"original"


def test_no_move_without_a_known_md5_a_prune_or_push_authority() -> None:
    disk, s3 = stores({"new": b"same"}, {})
    s3.put("pre/old", b"same", foreign=True)  # md5 unknown: cannot be matched by content
    assert "move" not in kinds(planned(world(), disk, s3))
    disk, s3 = stores({"new": b"same"}, {"old": b"same"})
    assert kinds(planned(world(prune=False), disk, s3)) == ["upload"]  # old is kept, so nothing vanishes
    pull = world(authority=Authority.S3)
    assert "move" not in kinds(planned(pull, disk, s3))
