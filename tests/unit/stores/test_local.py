"""LocalStore against a real temp directory."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from reconciler.model import Problem
from reconciler.stores.base import ObjectChanged, PermanentStoreError
from reconciler.stores.local import LocalStore


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def test_list_walks_sorted_and_reports_symlinks_that_leave_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "e" / "f.txt").write_bytes(b"f")
    (root / "a.txt").write_bytes(b"aa")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (root / "inside.txt").symlink_to(root / "a.txt")
    (root / ".x.pixel-tmp-abcd").write_bytes(b"half")
    problems: list[Problem] = []
    store = LocalStore("disk", root, on_problem=problems.append)
    entries = list(store.list(""))
    assert [e.key for e in entries] == ["a.txt", "d/e/f.txt", "inside.txt"]
    assert entries[0].size == 2 and entries[0].md5 is None
    assert len(problems) == 1 and problems[0].where == "disk:escape.txt"
    assert "leaves the store root" in problems[0].message


def test_write_is_atomic_and_verifies_md5(tmp_path: Path) -> None:
    store = LocalStore("disk", tmp_path)
    entry = store.write("x/y.bin", lambda: io.BytesIO(b"hello"), size=5, md5=md5(b"hello"), if_absent=True)
    assert (tmp_path / "x" / "y.bin").read_bytes() == b"hello" and entry.md5 == md5(b"hello")
    with pytest.raises(PermanentStoreError):
        store.write("x/z.bin", lambda: io.BytesIO(b"hellO"), size=5, md5=md5(b"hello"))
    assert not (tmp_path / "x" / "z.bin").exists()
    assert sorted(os.listdir(tmp_path / "x")) == ["y.bin"]  # no temp file left behind


def test_preconditions_on_create_overwrite_and_delete(tmp_path: Path) -> None:
    store = LocalStore("disk", tmp_path)
    (tmp_path / "k").write_bytes(b"v1")
    before = store.stat("k")
    assert before is not None
    with pytest.raises(ObjectChanged):
        store.write("k", lambda: io.BytesIO(b"v2"), size=2, md5=md5(b"v2"), if_absent=True)
    os.utime(tmp_path / "k", ns=(1, 1))
    with pytest.raises(ObjectChanged):
        store.delete("k", if_match=before.etag)
    assert (tmp_path / "k").read_bytes() == b"v1"
    current = store.stat("k")
    assert current is not None
    store.delete("k", if_match=current.etag)
    assert not (tmp_path / "k").exists()
