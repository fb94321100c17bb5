"""The planner's state rules, one case at a time."""

from __future__ import annotations

import hashlib

from reconciler.model import (
    ActionKind,
    Authority,
    Change,
    Desired,
    Entry,
    FindingKind,
    LocalStoreSpec,
    MappingObservation,
    MappingSpec,
    Observed,
    S3StoreSpec,
)
from reconciler.plan import plan
from reconciler.plan.render import render_text
from reconciler.plan.summary import closing_line, summary_line


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def desired(**mapping_kw: object) -> Desired:
    spec = MappingSpec(
        name="raw",
        local_store="disk",
        local_path="raw",
        s3_store="bucket",
        s3_prefix="data/raw/",
        **mapping_kw,  # type: ignore[arg-type]
    )
    return Desired(
        stores={"disk": LocalStoreSpec("disk", "/tmp/x"), "bucket": S3StoreSpec("bucket", "pixel-data")},
        mappings=(spec,),
        spec_digest="d",
    )


def local(key: str, data: bytes, mtime: int = 1) -> Entry:
    return Entry(key, len(data), md5(data), mtime, f"{len(data)}-{mtime}")


def remote(key: str, data: bytes, *, known: bool = True) -> Entry:
    etag = md5(data) if known else "0123456789abcdef0123456789abcdef-2"
    return Entry(key, len(data), md5(data) if known else None, None, etag)


def observed(loc: list[Entry], rem: list[Entry]) -> Observed:
    return Observed({"raw": MappingObservation({e.key: e for e in loc}, {e.key: e for e in rem})})


def test_new_local_file_is_uploaded_to_the_prefixed_key_with_absent_precondition() -> None:
    p = plan(desired(), observed([local("a.jsonl", b"x")], []))
    (action,) = p.actions
    assert action.kind is ActionKind.UPLOAD and action.change is Change.CREATE
    assert str(action.source) == "disk:raw/a.jsonl"
    assert str(action.target) == "bucket:data/raw/a.jsonl"
    assert action.precondition.target_absent and action.precondition.target_etag is None
    assert action.md5 == md5(b"x")


def test_same_size_edit_is_an_update_with_if_match_on_the_old_etag() -> None:
    p = plan(desired(), observed([local("a", b"new!")], [remote("a", b"old!")]))
    (action,) = p.actions
    assert action.change is Change.UPDATE
    assert action.precondition.target_etag == md5(b"old!")
    assert action.reason == f"content differs: md5 {md5(b'new!')[:8]}… ≠ {md5(b'old!')[:8]}…"


def test_identical_content_plans_nothing() -> None:
    p = plan(desired(), observed([local("a", b"same")], [remote("a", b"same")]))
    assert p.actions == ()
    assert summary_line(p) == "No changes to apply."
    assert closing_line(p) == "No changes. Storage matches the specs."


def test_extra_object_is_deleted_only_when_the_mapping_prunes() -> None:
    kept = plan(desired(prune=False), observed([], [remote("old", b"o")]))
    assert kept.actions == ()
    assert [f.kind for f in kept.findings] == [FindingKind.UNMANAGED]
    pruned = plan(desired(prune=True), observed([], [remote("old", b"o")]))
    (action,) = pruned.actions
    assert action.kind is ActionKind.DELETE and str(action.target) == "bucket:data/raw/old"
    assert action.precondition.target_etag == md5(b"o")


def test_protected_mapping_turns_a_delete_into_an_error() -> None:
    p = plan(desired(prune=True, protect=True), observed([], [remote("old", b"o")]))
    assert not p.applyable
    assert "protected" in p.errors[0] and "1 object(s)" in p.errors[0]


def test_unknown_remote_md5_same_size_is_a_rehash_and_different_size_an_upload() -> None:
    same = plan(desired(), observed([local("a", b"abcd")], [remote("a", b"wxyz", known=False)]))
    assert [a.kind for a in same.actions] == [ActionKind.REHASH]
    bigger = plan(desired(), observed([local("a", b"abcdef")], [remote("a", b"wxyz", known=False)]))
    assert [a.kind for a in bigger.actions] == [ActionKind.UPLOAD]


def test_pull_authority_downloads_and_prunes_local() -> None:
    p = plan(
        desired(authority=Authority.S3, prune_local=True),
        observed([local("stale", b"s")], [remote("fresh", b"f")]),
    )
    kinds = {a.kind: a for a in p.actions}
    assert str(kinds[ActionKind.DOWNLOAD].target) == "disk:raw/fresh"
    assert str(kinds[ActionKind.DELETE].target) == "disk:raw/stale"


def test_report_only_authority_acts_on_nothing_and_reports_conflicts() -> None:
    p = plan(
        desired(authority=Authority.NONE, prune=True),
        observed([local("a", b"1"), local("b", b"x")], [remote("a", b"2"), remote("c", b"y")]),
    )
    assert p.actions == ()
    assert sorted(f.key for f in p.findings) == [
        "bucket:data/raw/a",
        "bucket:data/raw/b",
        "bucket:data/raw/c",
    ]
    assert all(f.kind is FindingKind.CONFLICT for f in p.findings)


def test_text_rendering_is_sorted_and_ends_with_the_summary() -> None:
    p = plan(
        desired(prune=True),
        observed(
            [local("b", b"new"), local("a", b"22"), local("c", b"changed")],
            [remote("c", b"before!"), remote("z", b"gone")],
        ),
    )
    text = render_text(p, desired(prune=True))
    lines = text.splitlines()
    body = [line for line in lines if line.startswith("  ") and not line.startswith("  #")]
    assert [line.split()[1] for line in body] == ["data/raw/a", "data/raw/b", "data/raw/c", "data/raw/z"]
    assert [line.split()[0] for line in body] == ["+", "+", "~", "-"]
    assert lines[-1] == "Plan: 2 to upload, 1 to update, 1 to delete."
    assert "  # raw: disk:raw → bucket:data/raw/" in lines
