"""The release-local pass: local copies go only after S3 verifiably holds them."""

from __future__ import annotations

from reconciler.apply import ActionRunner, execute
from reconciler.model import ActionKind, Desired, Entry, LocalStoreSpec, MappingSpec, Plan, S3StoreSpec
from reconciler.observe import StreamingHasher, observe
from reconciler.plan import plan
from reconciler.plan.graph import build_graph
from reconciler.stores.base import OpenSource, PermanentStoreError
from reconciler.stores.memory import MemoryStore


def world(*, release: bool = True, prune: bool = True) -> Desired:
    return Desired(
        stores={"disk": LocalStoreSpec("disk", "/nowhere"), "s3": S3StoreSpec("s3", "bucket")},
        mappings=(MappingSpec("shards", "disk", "final", "s3", "final_dataset/", prune=prune, release_local=release),),
    )


def planned(d: Desired, disk: MemoryStore, s3: MemoryStore) -> Plan:
    return plan(d, observe(d, {"disk": disk, "s3": s3}, StreamingHasher()))


class FailingWrites(MemoryStore):
    def write(
        self,
        key: str,
        source: OpenSource,
        *,
        size: int,
        md5: str | None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> Entry:
        raise PermanentStoreError(f"injected failure writing {key}", code="Injected", key=key)


def test_upload_then_verify_then_release_in_that_order() -> None:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("final/train/0.jsonl", b"shard zero")
    d = world()
    p = planned(d, disk, s3)
    ids = {a.kind: a.id for a in p.actions}
    assert set(ids) == {ActionKind.UPLOAD, ActionKind.VERIFY, ActionKind.RELEASE_LOCAL}
    assert (ids[ActionKind.UPLOAD], ids[ActionKind.VERIFY]) in p.edges
    assert (ids[ActionKind.VERIFY], ids[ActionKind.RELEASE_LOCAL]) in p.edges
    result = execute(build_graph(p), ActionRunner({"disk": disk, "s3": s3}))
    assert result.ok
    assert disk.keys() == [] and s3.get("final_dataset/train/0.jsonl") == b"shard zero"
    # Released: S3 now holds the only copy, which is neither re-downloaded nor pruned.
    assert planned(d, disk, s3).actions == ()


def test_already_synced_files_are_verified_and_released() -> None:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("final/a", b"same")
    s3.put("final_dataset/a", b"same")
    p = planned(world(), disk, s3)
    assert sorted(a.kind.value for a in p.actions) == ["release-local", "verify"]
    assert execute(build_graph(p), ActionRunner({"disk": disk, "s3": s3})).ok
    assert disk.keys() == []


def test_failed_upload_keeps_the_local_file() -> None:
    disk, s3 = MemoryStore("disk"), FailingWrites("s3")
    disk.put("final/a", b"precious")
    p = planned(world(), disk, s3)
    result = execute(build_graph(p), ActionRunner({"disk": disk, "s3": s3}))
    assert [o.action.kind for o in result.failed] == [ActionKind.UPLOAD]
    assert sorted(o.action.kind.value for o in result.skipped) == ["release-local", "verify"]
    assert disk.get("final/a") == b"precious"


def test_verify_refuses_when_s3_records_other_content() -> None:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("final/a", b"local bytes")
    s3.put("final_dataset/a", b"local bytes")
    p = planned(world(), disk, s3)
    s3.put("final_dataset/a", b"tampered!!!")  # after the plan, before apply
    result = execute(build_graph(p), ActionRunner({"disk": disk, "s3": s3}))
    assert [o.action.kind for o in result.failed] == [ActionKind.VERIFY]
    assert "the local copy is kept" in result.failed[0].error
    assert disk.get("final/a") == b"local bytes"


def test_file_edited_after_the_plan_is_not_released() -> None:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("final/a", b"v1")
    s3.put("final_dataset/a", b"v1")
    p = planned(world(), disk, s3)
    disk.put("final/a", b"v2")
    result = execute(build_graph(p), ActionRunner({"disk": disk, "s3": s3}))
    assert [o.action.kind for o in result.failed] == [ActionKind.RELEASE_LOCAL]
    assert disk.get("final/a") == b"v2"


def test_unknown_remote_md5_or_conflict_gets_no_release_without_a_writer() -> None:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("final/a", b"abcd")
    s3.put("final_dataset/a", b"wxyz", foreign=True)  # same size, md5 unknown -> rehash first
    p = planned(world(), disk, s3)
    by_kind = {a.kind: a.id for a in p.actions}
    assert (by_kind[ActionKind.REHASH], by_kind[ActionKind.VERIFY]) in p.edges
    result = execute(build_graph(p), ActionRunner({"disk": disk, "s3": s3}))
    assert [o.action.kind for o in result.failed] == [ActionKind.VERIFY]  # rehash revealed other content
    assert disk.get("final/a") == b"abcd"


def test_no_release_pass_without_the_flag() -> None:
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    disk.put("final/a", b"x")
    assert [a.kind for a in planned(world(release=False), disk, s3).actions] == [ActionKind.UPLOAD]
