"""F1: release_local deletes a local file only if the bytes deleted are the bytes whose md5 S3 holds.

Size and mtime are not enough: a same-size edit whose mtime was put back (os.utime, touch -r) passes
them. These tests make exactly such edits, from a saved plan's point of view and from a concurrent
writer's, and count what was lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.model import Entry
from reconciler.stores.base import ObjectChanged
from reconciler.stores.local import LocalStore
from tests.hostile.data_helpers import keys, one_mapping, run
from tests.integration.pixelenv import PIXEL

pytestmark = pytest.mark.integration



def released_mapping(tmp_path: Path, seaweed: Any, bucket: str) -> tuple[Path, Path, dict[str, str]]:
    return one_mapping(tmp_path, seaweed, bucket, **{"from": "disk:rel", "to": "s3:rel/", "release_local": True})


def test_a_saved_release_keeps_a_same_size_edit_with_its_mtime_restored(
    seaweed: Any, bucket: str, tmp_path: Path, s3_client: Any
) -> None:
    specs, root, env = released_mapping(tmp_path, seaweed, bucket)
    path = root / "rel" / "det" / "a.dat"
    path.parent.mkdir(parents=True)
    v1 = os.urandom(4096)
    path.write_bytes(v1)
    first = run(["apply", "--auto-approve", "--specs", str(specs)], env)
    assert first.code == 0, first.err
    assert not path.exists()  # uploaded, verified, released

    path.write_bytes(v1)  # the same file put back: the plan only verifies and releases it
    mtime = path.stat().st_mtime_ns
    saved = tmp_path / "r.json"
    planned = run(["plan", "-out", str(saved), "--specs", str(specs)], env)
    assert planned.code == 0, planned.err
    assert sorted(a["kind"] for a in json.loads(saved.read_text())["actions"]) == ["release-local", "verify"]

    v2 = os.urandom(len(v1))  # other bytes, same length, old mtime: size and mtime say "unchanged"
    path.write_bytes(v2)
    os.utime(path, ns=(mtime, mtime))
    applied = run(["apply", str(saved), "--specs", str(specs)], env)

    assert path.read_bytes() == v2, "the never-uploaded edit was deleted"
    assert applied.code == 1
    # The edit moved ctime, which the local version the plan recorded includes: the release is refused before
    # a byte is read (the release's own check of the bytes, behind it, is for what no stat can see).
    assert "changed since the plan was made" in applied.out + applied.err
    assert keys(s3_client, bucket) == {"rel/det/a.dat": v1}


@pytest.mark.slow
def test_a_concurrent_same_size_writer_loses_no_edit_to_release_local(
    seaweed: Any, bucket: str, tmp_path: Path, s3_client: Any
) -> None:
    specs, root, env = released_mapping(tmp_path, seaweed, bucket)
    files = [root / "rel" / f"d{i % 5}" / f"f{i:03d}.bin" for i in range(100)]
    original = {p: os.urandom(16 * 1024) for p in files}
    old = (os.stat(tmp_path).st_mtime_ns // 10**9 - 3600) * 10**9
    for p, data in original.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.utime(p, ns=(old, old))
    assert run(["apply", "--auto-approve", "--specs", str(specs)], env).code == 0
    assert not any(p.exists() for p in files)
    for p, data in original.items():  # back as they were: the next apply verifies and releases them all
        p.write_bytes(data)
        os.utime(p, ns=(old, old))

    edited = files[::2]  # the writer's half; the other half must be released, or the race never ran
    last: dict[Path, bytes] = {}
    done = threading.Event()
    rng = random.Random(10)

    def writer() -> None:
        while not done.is_set():
            p = rng.choice(edited)
            data = os.urandom(16 * 1024)
            with open(p, "wb") as f:  # same size, then the old mtime back
                f.write(data)
            last[p] = data
            # Renamed aside by a release at that instant: the bytes are judged by content anyway.
            with contextlib.suppress(FileNotFoundError):
                os.utime(p, ns=(old, old))
            done.wait(0.002)

    thread = threading.Thread(target=writer)
    proc = subprocess.Popen([PIXEL, "apply", "--auto-approve", "--specs", str(specs)],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    thread.start()
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        done.set()
        thread.join()

    held = keys(s3_client, bucket)
    lost = []
    for p in edited:
        expected = last.get(p, original[p])
        key = str(p.relative_to(root))
        on_disk = p.read_bytes() if p.exists() else None
        if on_disk != expected and held.get(key) != expected:
            lost.append(key)
    assert lost == [], f"{len(lost)} edits lost: {lost[:5]}\n{out}\n{err}"
    assert last, "the writer never ran"
    assert not any(p.exists() for p in files[1::2]), f"untouched files were not released:\n{out}\n{err}"


def one_file(tmp_path: Path, body: bytes) -> tuple[LocalStore, Path, str | None]:
    """A local store holding `a.dat`, and the version of it a plan would record."""
    store = LocalStore("disk", tmp_path)
    path = tmp_path / "a.dat"
    path.write_bytes(body)
    token = store.stat("a.dat")
    assert isinstance(token, Entry)
    return store, path, token.etag


def test_release_puts_the_bytes_back_beside_a_file_recreated_meanwhile(tmp_path: Path) -> None:
    """The rename-back race: a writer re-creates the path while the bytes are aside; neither version is lost."""
    # Imported here: absent before the fix, and the other tests of this file must still run there.
    from reconciler.stores.local import KEPT_MARKER

    store, path, version = one_file(tmp_path, b"released version")

    def confirm(md5: str, size: int) -> None:
        path.write_bytes(b"new edit")  # the path is free while the bytes are aside: a writer takes it
        raise ObjectChanged("S3 holds other bytes", code="BadDigest")

    with pytest.raises(ObjectChanged, match="kept at"):
        store.release("a.dat", if_match=version, confirm=confirm)
    assert path.read_bytes() == b"new edit"
    (kept,) = [p for p in tmp_path.iterdir() if KEPT_MARKER in p.name]
    assert kept.read_bytes() == b"released version"


def test_release_keeps_bytes_that_s3_does_not_hold_even_when_the_version_still_matches(tmp_path: Path) -> None:
    """What no stat can see (the version the plan recorded still matches) the release's own look at the bytes does."""
    store, path, version = one_file(tmp_path, b"bytes never uploaded")
    seen: list[tuple[str, int]] = []

    def confirm(md5: str, size: int) -> None:
        seen.append((md5, size))
        raise ObjectChanged("S3 holds other bytes", code="BadDigest")

    with pytest.raises(ObjectChanged, match="the local file is kept"):
        store.release("a.dat", if_match=version, confirm=confirm)
    assert path.read_bytes() == b"bytes never uploaded"
    assert seen == [(hashlib.md5(b"bytes never uploaded").hexdigest(), len(b"bytes never uploaded"))]
