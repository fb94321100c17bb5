"""A warm observation: the hash cache asked for a whole tree at once (`known_many`, `lookup_many`) answers as it
does file by file, and md5s are shared without copies."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model import Authority, Desired, Entry, LocalStoreSpec, MappingSpec, S3StoreSpec
from reconciler.observe import observe, observer
from reconciler.observe.hashcache import CACHE_FILE, CachedHasher, FileKey, HashCache
from reconciler.stores.local import LocalStore
from reconciler.stores.memory import MemoryStore

HOUR_NS = 3600 * 1_000_000_000
NAMES = ["a", "b", "d/c", "d/e/f", "g/h"]
# What happens to a file between the plan that cached it and the one that asks: each changes what the cache
# may say, in a different part of the file's identity (or of the entry the walk made).
CHANGES = ["none", "same-size edit, mtime put back", "touch", "delete", "replace (new inode)", "not a walked version"]


def later_clock() -> int:
    return time.time_ns() + HOUR_NS  # ctime cannot be set back: "now" moves forward instead


def apply_change(root: Path, name: str, change: str) -> None:
    path = root / name
    if change == "same-size edit, mtime put back":
        before = path.stat()
        path.write_bytes(path.read_bytes().swapcase())
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif change == "touch":
        os.utime(path, ns=(0, 1_000_000_000))
    elif change == "delete":
        path.unlink()
    elif change == "replace (new inode)":
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)


@settings(max_examples=40, deadline=None)
@given(
    changes=st.lists(st.sampled_from(CHANGES), min_size=len(NAMES), max_size=len(NAMES)),
    cached=st.lists(st.booleans(), min_size=len(NAMES), max_size=len(NAMES)),
    base=st.sampled_from(["", "d/"]),
)
def test_known_many_answers_and_counts_as_known_does(changes: list[str], cached: list[bool], base: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        for name in NAMES:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(f"bytes of {name}".encode())
        store = LocalStore("disk", root)
        db = Path(tmp) / "cache" / CACHE_FILE
        cold = CachedHasher(HashCache(db, clock=later_clock))
        before = {e.key: e for e in store.list("")}
        for name, keep in zip(NAMES, cached, strict=True):
            if keep:
                cold.md5(store, before[name])
        cold.close()
        for name, change in zip(NAMES, changes, strict=True):
            apply_change(root, name, change)
        walked = {e.key: e for e in store.list("")}
        # The entries a plan holds: the walk's where the file is still there, the earlier walk's where it is
        # gone, and one whose version the walk did not make (a stat decides).
        asked = [
            Entry(name, before[name].size, None, etag="not-a-version")
            if change == "not a walked version"
            else walked.get(name, before[name])
            for name, change in zip(NAMES, changes, strict=True)
            if name.startswith(base)
        ]
        one_by_one = CachedHasher(HashCache(db, clock=later_clock))
        singly = [one_by_one.known(store, e) for e in asked]
        one_by_one.close()
        bulk = CachedHasher(HashCache(db, clock=later_clock))
        relative = [Entry(e.key.removeprefix(base), e.size, e.md5, e.mtime_ns, e.etag) for e in asked]
        assert bulk.known_many(store, relative, base) == singly
        assert bulk.cache_hits == one_by_one.cache_hits == sum(md5 is not None for md5 in singly)
        bulk.close()
        expected = {
            name: hashlib.md5(f"bytes of {name}".encode()).hexdigest()
            for name, change, keep in zip(NAMES, changes, cached, strict=True)
            # A deleted file's entry is the earlier walk's: the md5 of exactly the version it names.
            if keep and change in ("none", "not a walked version", "delete") and name.startswith(base)
        }
        assert {e.key: md5 for e, md5 in zip(asked, singly, strict=True) if md5 is not None} == expected


def test_lookup_many_outside_a_preloaded_tree_loads_each_directory(tmp_path: Path) -> None:
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "f").write_bytes(d.encode())
    keys = [FileKey.of(str(tmp_path / d / "f"), os.stat(tmp_path / d / "f")) for d in ("x", "y")]
    db = tmp_path / "cache" / CACHE_FILE
    with HashCache(db, clock=later_clock) as cache:
        cache.remember(keys[0], "0" * 32)
    cache = HashCache(db, clock=later_clock)  # no preload: rows come a directory at a time
    fields = [(k.path, k.dev, k.ino, k.size, k.mtime_ns, k.ctime_ns) for k in keys]
    moved = (fields[0][0], fields[0][1], fields[0][2], fields[0][3], fields[0][4] + 1, fields[0][5])
    assert cache.lookup_many([*fields, moved]) == ["0" * 32, None, None]
    cache.close()


@pytest.mark.parametrize("local_path", ["", "src"])
def test_a_warm_observation_shares_each_md5_without_copying_entries_for_it(
    tmp_path: Path, local_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    names = [f"d{i % 3}/f{i}" for i in range(30)]
    for name in names:
        (root / local_path / name).parent.mkdir(parents=True, exist_ok=True)
        (root / local_path / name).write_bytes(name.encode())
    desired = Desired(
        stores={"disk": LocalStoreSpec("disk", str(root)), "s3": S3StoreSpec("s3", "bucket")},
        mappings=(MappingSpec("m", "disk", local_path, "s3", "pre/", authority=Authority.LOCAL),),
    )
    disk, s3 = LocalStore("disk", root), MemoryStore("s3")
    for name in names:
        s3.put(f"pre/{name}", name.encode())
    db = tmp_path / "cache" / CACHE_FILE
    observe(desired, {"disk": disk, "s3": s3}, cold := CachedHasher(HashCache(db, clock=later_clock)))
    cold.close()

    copies: list[Entry] = []

    def counted(entry: Entry, key: str, size: int, md5: str | None, etag: str | None) -> Entry:
        copies.append(entry)
        return Entry(key, size, md5, entry.mtime_ns, etag)

    monkeypatch.setattr(observer, "_entry", counted)
    warm = CachedHasher(HashCache(db, clock=later_clock))
    seen = observe(desired, {"disk": disk, "s3": s3}, warm).mappings["m"]
    warm.close()
    assert warm.cache_hits == len(names) and warm.files_read == 0
    assert sorted(seen.local) == sorted(seen.remote) == sorted(names)
    assert all(seen.local[k].md5 is seen.remote[k].md5 is not None for k in names)  # one string a pair
    # Each local entry is copied once, to take its md5: not again to share that md5 with the listing's.
    assert len(copies) == len(names)
