"""F2, F3 in process: the planner rule (a part of a tree not observed gets no action) and the observer's gaps."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import UserError
from reconciler.model import (
    ActionKind,
    Authority,
    Desired,
    Entry,
    FindingKind,
    Gap,
    LocalStoreSpec,
    MappingObservation,
    MappingSpec,
    Observed,
    S3StoreSpec,
)
from reconciler.observe import observe
from reconciler.plan import plan
from reconciler.stores.base import PermanentStoreError, Store
from reconciler.stores.local import LocalStore
from reconciler.stores.memory import MemoryStore
from reconciler.workflow import observe_and_plan
from reconciler.workspace import Workspace


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def entry(key: str, data: bytes) -> Entry:
    return Entry(key, len(data), md5(data), 1, md5(data))


def desired(**kw: Any) -> Desired:
    spec = MappingSpec("m", "disk", "rel", "s3", "rel/", **kw)
    return Desired(stores={"disk": LocalStoreSpec("disk", "/nowhere"), "s3": S3StoreSpec("s3", "b")}, mappings=(spec,))


def test_no_delete_upload_or_download_is_planned_in_a_part_the_observation_missed() -> None:
    remote = {k: entry(k, k.encode()) for k in ("sub/a", "sub/deep/b", "subway", "gone")}
    local = {"new": entry("new", b"new")}
    obs = MappingObservation(local, remote, local_gaps=(Gap("sub", "cannot list directory: Permission denied"),))
    result = plan(desired(prune=True), Observed({"m": obs}))
    assert sorted((a.kind.value, a.target.key) for a in result.actions) == [
        ("delete", "rel/gone"),  # outside the gap: "subway" is not under "sub/"
        ("delete", "rel/subway"),
        ("upload", "rel/new"),
    ]
    held = sorted(f.key for f in result.findings if f.kind is FindingKind.PROBLEM)
    assert held == ["s3:rel/sub/a", "s3:rel/sub/deep/b"]

    # A pull whose listing of the bucket is incomplete overwrites and deletes nothing local in the gap.
    pulled = MappingObservation(
        {"x/old": entry("x/old", b"old"), "x/edited": entry("x/edited", b"mine")},
        {"x/edited": entry("x/edited", b"theirs"), "y": entry("y", b"y")},
        remote_gaps=(Gap("x", "listing failed"),),
    )
    result = plan(desired(authority=Authority.S3, prune_local=True), Observed({"m": pulled}))
    assert [(a.kind, a.target.key) for a in result.actions] == [(ActionKind.DOWNLOAD, "rel/y")]

    # The whole side unknown: nothing at all.
    whole = MappingObservation({}, remote, local_gaps=(Gap("", "cannot list directory: Permission denied"),))
    assert plan(desired(prune=True), Observed({"m": whole})).actions == ()


class _Unreadable:
    """A hasher for which one file raises the PermissionError an unreadable file gives."""

    def __init__(self, bad: str) -> None:
        self.bad = bad

    def known(self, store: Store, e: Entry) -> str | None:
        return None

    def md5(self, store: Store, e: Entry) -> str:
        if e.key == self.bad:
            raise PermissionError(13, "Permission denied", e.key)
        with store.open(e.key) as f:
            return md5(f.read())


def test_a_file_the_hasher_cannot_read_becomes_a_gap_and_a_finding(tmp_path: Path) -> None:
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "bad.txt").write_bytes(b"edited")
    (tmp_path / "rel" / "ok.txt").write_bytes(b"ok")
    d = desired(prune=True, release_local=True)
    s3 = MemoryStore("s3")
    s3.put("rel/bad.txt", b"old")
    stores: dict[str, Store] = {"disk": LocalStore("disk", tmp_path), "s3": s3}
    observed = observe(d, stores, _Unreadable("rel/bad.txt"))
    assert set(observed.mappings["m"].local) == {"ok.txt"}
    result = plan(d, observed)
    assert all(a.target.key not in ("rel/bad.txt",) for a in result.actions)
    assert any(f.key == "disk:rel/bad.txt" and "cannot read" in f.message for f in result.findings)
    assert "upload:s3:rel/ok.txt" in {a.id for a in result.actions}


def test_a_release_interrupted_by_a_kill_leaves_its_key_unknown_not_absent(tmp_path: Path) -> None:
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / ".a.dat.pixel-release-0badc0de").write_bytes(b"the user's bytes")  # renamed aside, then -9
    d = desired(prune=True)
    s3 = MemoryStore("s3")
    s3.put("rel/a.dat", b"older bytes")
    stores: dict[str, Store] = {"disk": LocalStore("disk", tmp_path), "s3": s3}
    result = plan(d, observe(d, stores, _Unreadable("")))
    assert result.actions == ()  # rel/a.dat is not deleted from S3, nor the aside file uploaded
    assert any("a release of this file was interrupted" in f.message for f in result.findings)


KEYS = st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=3).map("/".join)


@settings(max_examples=200, deadline=None)
@given(
    local=st.dictionaries(KEYS, st.binary(max_size=2), max_size=6),
    remote=st.dictionaries(KEYS, st.binary(max_size=2), max_size=6),
    gap=st.sampled_from(["", "a", "b", "a/b"]),
    gap_side=st.booleans(),
    authority=st.sampled_from([Authority.LOCAL, Authority.S3]),
    release=st.booleans(),
)
def test_law_no_action_touches_a_key_in_a_gap(
    local: dict[str, bytes], remote: dict[str, bytes], gap: str, gap_side: bool, authority: Authority, release: bool
) -> None:
    gaps = (Gap(gap, "unreadable"),)
    obs = MappingObservation(
        {k: entry(k, v) for k, v in local.items() if not (gap_side and Gap(gap, "").covers(k))},
        {k: entry(k, v) for k, v in remote.items() if gap_side or not Gap(gap, "").covers(k)},
        local_gaps=gaps if gap_side else (),
        remote_gaps=() if gap_side else gaps,
    )
    d = desired(authority=authority, prune=True, prune_local=authority is Authority.S3,
                release_local=release and authority is Authority.LOCAL)
    for action in plan(d, Observed({"m": obs})).actions:
        rel = action.target.key.removeprefix("rel/")
        assert not gaps[0].covers(rel), action


def test_a_file_directory_clash_is_found_whatever_sorts_between() -> None:
    remote = {k: entry(k, k.encode()) for k in ("a", "a-b", "a.c", "a/b", "z")}
    result = plan(desired(authority=Authority.S3), Observed({"m": MappingObservation({}, remote)}))
    assert sorted(a.target.key for a in result.actions) == ["rel/a-b", "rel/a.c", "rel/z"]
    assert sorted(f.key for f in result.findings) == ["s3:rel/a", "s3:rel/a/b"]


class _FailsOnSecondPage(MemoryStore):
    """A bucket whose listing breaks after its first entries, as a failed ListObjectsV2 page does."""

    def list(self, prefix: str) -> Iterator[Entry]:
        for n, e in enumerate(super().list(prefix)):
            if n == 2:
                raise PermanentStoreError("list rel/: page 2: 403 AccessDenied", code="AccessDenied")
            yield e


def test_a_failed_s3_listing_page_plans_nothing(tmp_path: Path) -> None:
    (tmp_path / "rel").mkdir()
    d = desired(prune=True)
    s3 = _FailsOnSecondPage("s3")
    for i in range(5):
        s3.put(f"rel/k{i}", b"x")
    ws = Workspace(d, {"disk": LocalStore("disk", tmp_path), "s3": s3})
    with pytest.raises(UserError, match="page 2"):
        observe_and_plan(ws, _Unreadable(""))  # an empty local tree, but no "delete everything" plan
