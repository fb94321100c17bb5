"""LocalStore against a real temp directory."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from reconciler.apply import ActionRunner, execute
from reconciler.model import Authority, Desired, FindingKind, LocalStoreSpec, MappingSpec, S3StoreSpec
from reconciler.observe import StreamingHasher, observe
from reconciler.plan import plan
from reconciler.plan.graph import build_graph
from reconciler.stores.base import ObjectChanged, PermanentStoreError, Store
from reconciler.stores.local import LocalStore
from reconciler.stores.memory import MemoryStore


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
    store = LocalStore("disk", root)
    entries = list(store.list(""))
    problems = store.problems
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


# Keys come from S3 under a pull, and S3 accepts `..`: none of these may reach outside the root.
ESCAPING_KEYS = [
    ("raw/../../escape.json", 'leaves the local root {root} (it has a ".." segment)'),
    ("../escape.json", 'leaves the local root {root} (it has a ".." segment)'),
    ("raw/..", 'leaves the local root {root} (it has a ".." segment)'),
    ("/tmp/escape.json", "leaves the local root {root} (it is an absolute path)"),
    ("raw/a\0b.json", "cannot be a local path (it contains a NUL byte)"),
    ("", "names the local root {root} itself, not a file in it"),
    ("./", "names the local root {root} itself, not a file in it"),
]


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize(("key", "why"), ESCAPING_KEYS)
def test_every_method_refuses_a_key_that_leaves_the_root(tmp_path: Path, key: str, why: str) -> None:
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "inside.json").write_bytes(b"in")
    (tmp_path / "escape.json").write_bytes(b"outside")  # exists, so stat/open/delete could find it
    store = LocalStore("disk", root)
    before = tree(tmp_path)
    quoted = '"' + key.replace("\0", "\\u0000") + '"'
    expected = f'local store "disk": key {quoted} {why.format(root=root)}; refused, nothing was touched'

    calls = {
        "path": lambda: store.path(key),
        "stat": lambda: store.stat(key),
        "open": lambda: store.open(key),
        "write": lambda: store.write(key, lambda: io.BytesIO(b"evil"), size=4, md5=md5(b"evil")),
        "write if absent": lambda: store.write(key, lambda: io.BytesIO(b"evil"), size=4, md5=None, if_absent=True),
        "copy to": lambda: store.copy("raw/inside.json", key, md5=None),
        "copy from": lambda: store.copy(key, "raw/copy.json", md5=None),
        "delete": lambda: store.delete(key),
    }
    for name, call in calls.items():
        with pytest.raises(PermanentStoreError) as caught:
            call()
        assert str(caught.value) == expected, name
        assert caught.value.code == "KeyOutsideRoot" and caught.value.key == key, name
    assert tree(tmp_path) == before
    assert (tmp_path / "escape.json").read_bytes() == b"outside"


def test_write_of_a_dotdot_key_creates_nothing_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"  # does not exist yet: a pull into a new directory
    store = LocalStore("disk", root)
    with pytest.raises(PermanentStoreError, match=r'key "raw/\.\./\.\./escape\.json" leaves the local root'):
        store.write("raw/../../escape.json", lambda: io.BytesIO(b"evil"), size=4, md5=md5(b"evil"))
    assert tree(tmp_path) == []  # neither the escape nor the root nor raw/ was created


@pytest.mark.parametrize("key", ["link/victim.json", "link/new/deeper.json", "file-link.json"])
def test_symlinked_parent_that_leaves_the_root_is_refused(tmp_path: Path, key: str) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "victim.json").write_bytes(b"victim")
    (root / "link").symlink_to(outside)  # root/link/... is outside the root
    (root / "file-link.json").symlink_to(outside / "victim.json")
    (root / "real.json").write_bytes(b"real")
    store = LocalStore("disk", root)
    real = os.path.realpath(root / key)
    expected = (
        f'local store "disk": key "{key}" leaves the local root {root} '
        f"(through a symlink, it resolves to {real}); refused, nothing was touched"
    )
    for call in (
        lambda: store.stat(key),
        lambda: store.open(key),
        lambda: store.write(key, lambda: io.BytesIO(b"evil"), size=4, md5=None),
        lambda: store.copy(key, "fine.json", md5=None),
        lambda: store.copy("real.json", key, md5=None),
        lambda: store.delete(key),
        lambda: list(store.list(key + "/")),
    ):
        with pytest.raises(PermanentStoreError) as caught:
            call()
        assert str(caught.value) == expected
    assert tree(outside) == ["victim.json"] and (outside / "victim.json").read_bytes() == b"victim"
    assert tree(root) == ["file-link.json", "link", "real.json"]


def test_listing_a_prefix_through_a_symlink_that_leaves_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "x.json").write_bytes(b"x")
    (root / "raw").symlink_to(outside)
    store = LocalStore("disk", root)
    with pytest.raises(PermanentStoreError, match="leaves the local root"):
        list(store.list("raw/"))
    with pytest.raises(PermanentStoreError, match=r'has a "\.\." segment'):
        list(store.list("raw/../../"))


def test_symlinks_and_odd_names_inside_the_root_still_work(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real")
    store = LocalStore("disk", root)
    store.write("alias/a.json", lambda: io.BytesIO(b"a"), size=1, md5=md5(b"a"))
    store.write("real/..b/c...json", lambda: io.BytesIO(b"c"), size=1, md5=md5(b"c"))  # dots, not ".."
    assert (root / "real" / "a.json").read_bytes() == b"a"
    assert [e.key for e in store.list("real/")] == ["real/..b/c...json", "real/a.json"]
    assert [e.key for e in store.list("alias/")] == ["alias/..b/c...json", "alias/a.json"]
    with store.open("alias/a.json") as f:
        assert f.read() == b"a"
    store.delete("real/..b/c...json")
    assert not (root / "real" / "..b" / "c...json").exists()


def test_a_pulled_s3_key_with_dotdot_is_a_finding_and_everything_else_applies(tmp_path: Path) -> None:
    """AWS S3 accepts `data/raw/../../escape.json`; under a pull it would map to `raw/../../escape.json` locally.

    The planner reports it instead of planning a download (the store refuses such a key anyway, see above).
    """
    root = tmp_path / "root"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "stale.json").write_bytes(b"stale")  # pruned: a delete that must still happen
    desired = Desired(
        stores={"disk": LocalStoreSpec("disk", str(root)), "s3": S3StoreSpec("s3", "bucket")},
        mappings=(MappingSpec("raw", "disk", "raw", "s3", "data/raw/", authority=Authority.S3, prune_local=True),),
    )
    s3 = MemoryStore("s3")
    s3.put("data/raw/a.json", b"a")
    s3.put("data/raw/sub/b.json", b"bb")
    s3.put("data/raw/../../escape.json", b"evil")
    stores: dict[str, Store] = {"disk": LocalStore("disk", root), "s3": s3}

    first = plan(desired, observe(desired, stores, StreamingHasher()))
    assert not [a for a in first.actions if ".." in a.target.key]
    (problem,) = [f for f in first.findings if f.kind is FindingKind.PROBLEM]
    assert problem.key == "s3:data/raw/../../escape.json" and "cannot be mirrored as a local file" in problem.message
    result = execute(build_graph(first), ActionRunner(stores), parallelism=2)

    assert result.ok and len(result.done) == len(first.actions) == 3  # two downloads, one prune
    assert tree(tmp_path) == ["root", "root/raw", "root/raw/a.json", "root/raw/sub", "root/raw/sub/b.json"]
    assert (root / "raw" / "sub" / "b.json").read_bytes() == b"bb"


def test_a_files_version_moves_with_ctime_inode_and_device_not_only_size_and_mtime(tmp_path: Path) -> None:
    store = LocalStore("disk", tmp_path)
    (tmp_path / "a").write_bytes(b"one")
    first = store.stat("a")
    assert first is not None and first.etag is not None
    st = os.stat(tmp_path / "a")
    assert store.walked_identity(first) == (
        str(tmp_path / "a"), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns
    )
    os.chmod(tmp_path / "a", 0o600)  # no byte or mtime moved, ctime did
    second = store.stat("a")
    assert second is not None and second.etag != first.etag
    with pytest.raises(ObjectChanged):
        store.delete("a", if_match=first.etag)
    assert (tmp_path / "a").exists()


@pytest.mark.parametrize("key", ["d/./a", "d//a", "d/a/"])
def test_file_path_of_an_unusual_key_is_what_abspath_gives(tmp_path: Path, key: str) -> None:
    assert LocalStore("disk", tmp_path).file_path(key) == os.path.abspath(tmp_path / key)
