"""A pull deletes local files the bucket no longer holds only under an explicit `prune_local: true`.

`prune: true` on a pull used to delete local files: a local delete is never implied now, and the
deletes `prune_local` does allow count in the guards (max-delete, mass-delete %) like any other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from reconciler.model import (
    ActionKind,
    Authority,
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
from reconciler.plan.guards import GuardLimits, check
from reconciler.spec import SpecErrors, load_desired
from tests.hostile.data_helpers import one_mapping, run


def entry(key: str, data: bytes) -> Entry:
    md5 = hashlib.md5(data).hexdigest()
    return Entry(key, len(data), md5, 1, md5)


def pull(**kw: Any) -> Desired:
    spec = MappingSpec("m", "disk", "got", "s3", "pull/", authority=Authority.S3, **kw)
    return Desired(stores={"disk": LocalStoreSpec("disk", "/x"), "s3": S3StoreSpec("s3", "b")}, mappings=(spec,))


def observed(n_local_only: int) -> Observed:
    local = {f"old{i}": entry(f"old{i}", b"x") for i in range(n_local_only)}
    local |= {f"kept{i}": entry(f"kept{i}", b"k") for i in range(10)}
    remote = {f"kept{i}": entry(f"kept{i}", b"k") for i in range(10)}
    return Observed({"m": MappingObservation(local, remote)})


def test_prune_alone_never_deletes_local_files_on_a_pull() -> None:
    result = plan(pull(prune=True), observed(2))
    assert result.actions == ()
    unmanaged = sorted(f.key for f in result.findings if f.kind is FindingKind.UNMANAGED)
    assert unmanaged == ["disk:got/old0", "disk:got/old1"]
    assert all("prune_local: true" in f.message for f in result.findings)


def test_prune_local_deletes_and_the_guards_count_those_deletes() -> None:
    two = plan(pull(prune_local=True), observed(2))
    assert sorted((a.kind, a.target.key) for a in two.actions) == [
        (ActionKind.DELETE, "got/old0"), (ActionKind.DELETE, "got/old1")
    ]
    assert check(pull(prune_local=True), observed(2), two, GuardLimits()).errors == ()
    assert "more than --max-delete 1" in " ".join(check(pull(prune_local=True), observed(2), two,
                                                         GuardLimits(max_delete=1)).errors)
    many = plan(pull(prune_local=True), observed(8))  # 8 of 18 local files: past the 25% mass-delete rule
    (error,) = check(pull(prune_local=True), observed(8), many, GuardLimits()).errors
    assert "would delete 8 of the 18 objects under disk:got/" in error


def specs(tmp_path: Path, mapping: str) -> Path:
    (tmp_path / "s.yaml").write_text(
        "stores:\n  s3: {type: s3, bucket: pixel-data}\n  disk: {type: local, root: /tmp}\n"
        f"mappings:\n  - {{name: m, from: 'disk:got', to: 's3:pull/', {mapping}}}\n"
    )
    return tmp_path


def test_prune_local_is_a_spec_field_for_pulls_only(tmp_path: Path) -> None:
    (spec,) = load_desired(specs(tmp_path, "authority: s3, prune_local: true"), {}).mappings
    assert spec.prune_local and not spec.prune
    with pytest.raises(SpecErrors) as caught:
        load_desired(specs(tmp_path, "authority: local, prune_local: true"), {})
    assert "prune_local needs authority s3" in " ".join(caught.value.messages)


@pytest.mark.integration
def test_a_pull_with_prune_keeps_a_local_file_the_bucket_does_not_hold(
    seaweed: Any, bucket: str, tmp_path: Path, s3_client: Any
) -> None:
    spec_dir, root, env = one_mapping(
        tmp_path, seaweed, bucket, **{"from": "disk:got", "to": "s3:pull/", "authority": "s3", "prune": True}
    )
    (root / "got").mkdir()
    (root / "got" / "mine.txt").write_bytes(b"only here")
    s3_client.put_object(Bucket=bucket, Key="pull/theirs.txt", Body=b"from s3")
    applied = run(["apply", "--auto-approve", "--specs", str(spec_dir)], env)
    assert applied.code == 0, applied.out + applied.err
    assert (root / "got" / "mine.txt").read_bytes() == b"only here"
    assert (root / "got" / "theirs.txt").read_bytes() == b"from s3"
