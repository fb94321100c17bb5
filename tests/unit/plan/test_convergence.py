"""Property: whatever the trees, applying the plan and re-planning leaves nothing to do."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.apply import ActionRunner, execute
from reconciler.model import ActionKind, Authority, Desired, LocalStoreSpec, MappingSpec, Plan, S3StoreSpec
from reconciler.observe import StreamingHasher, observe
from reconciler.plan import plan
from reconciler.plan.graph import build_graph
from reconciler.stores.base import ObjectChanged
from reconciler.stores.memory import MemoryStore

KEYS = st.sampled_from(["a", "b", "c/d", "c/e", "f/g/h", "x.jsonl", "y.json", "z"])
CONTENT = st.sampled_from([b"", b"1", b"22", b"33", b"abc", b"xyz", b"hello world"])
TREE = st.dictionaries(KEYS, CONTENT, max_size=8)
REMOTE = st.dictionaries(KEYS, st.tuples(CONTENT, st.booleans()), max_size=8)


def world(authority: Authority, prune: bool) -> Desired:
    mappings = (
        MappingSpec("m", "disk", "src", "s3", "pre/", authority=authority, prune=prune),
        MappingSpec("other", "disk", "elsewhere", "s3", "other/", authority=authority, prune=False),
    )
    return Desired(
        stores={"disk": LocalStoreSpec("disk", "/nowhere"), "s3": S3StoreSpec("s3", "bucket")},
        mappings=mappings,
    )


def replan(d: Desired, disk: MemoryStore, s3: MemoryStore) -> Plan:
    stores = {"disk": disk, "s3": s3}
    return plan(d, observe(d, stores, StreamingHasher()))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    local=TREE,
    remote=REMOTE,
    outside=st.dictionaries(st.sampled_from(["keep1", "keep2", "pre", "prefix/x"]), CONTENT, max_size=3),
    authority=st.sampled_from([Authority.LOCAL, Authority.S3]),
    prune=st.booleans(),
)
def test_apply_then_replan_converges(
    local: dict[str, bytes],
    remote: dict[str, tuple[bytes, bool]],
    outside: dict[str, bytes],
    authority: Authority,
    prune: bool,
) -> None:
    d = world(authority, prune)
    disk, s3 = MemoryStore("disk"), MemoryStore("s3")
    for key, data in local.items():
        disk.put(f"src/{key}", data)
    for key, (data, foreign) in remote.items():
        s3.put(f"pre/{key}", data, foreign=foreign)
    for key, data in outside.items():
        s3.put(key, data)
    before_outside = {k: s3.get(k) for k in s3 if not k.startswith("pre/")}

    first = replan(d, disk, s3)
    # Never a delete outside the one prunable prefix.
    for action in first.actions:
        if action.kind is ActionKind.DELETE:
            assert prune
            prefix = "pre/" if authority is Authority.LOCAL else "src/"
            assert action.target.key.startswith(prefix)
    # Rehash may reveal a difference the next round acts on: at most two rounds to converge.
    current = first
    for _ in range(2):
        result = execute(build_graph(current), ActionRunner({"disk": disk, "s3": s3}), parallelism=4)
        assert result.ok, [o.error for o in result.failed]
        current = replan(d, disk, s3)
        if not current.actions:
            break
    assert current.actions == (), [a.id for a in current.actions]
    assert {k: s3.get(k) for k in s3 if not k.startswith("pre/")} == before_outside
    truth, mirror = (disk, s3) if authority is Authority.LOCAL else (s3, disk)
    tp, mp = ("src/", "pre/") if authority is Authority.LOCAL else ("pre/", "src/")
    for key in truth:
        if key.startswith(tp):
            assert mirror.get(mp + key[len(tp) :]) == truth.get(key)


def test_memory_store_refuses_a_delete_with_a_stale_etag() -> None:
    s3 = MemoryStore("s3")
    s3.put("k", b"v1")
    entry = s3.stat("k")
    assert entry is not None
    s3.put("k", b"v2")
    with pytest.raises(ObjectChanged):
        s3.delete("k", if_match=entry.etag)
    assert s3.get("k") == b"v2"
