"""F2, F3: deletes (and downloads over local files) are planned only from complete observations.

A directory that cannot be listed or a file that cannot be read leaves its keys unknown, not absent:
no delete, no upload, no overwrite there, a finding that says why, and `--strict` makes it exit 1.
The CLI tests run without root's DAC override (setpriv), so chmod 000 means what it means for a user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.hostile.data_helpers import keys, one_mapping, run


def pruned(tmp_path: Path, seaweed: Any, bucket: str) -> tuple[Path, Path, dict[str, str]]:
    return one_mapping(tmp_path, seaweed, bucket, **{"from": "disk:rel", "to": "s3:rel/", "prune": True})


@pytest.mark.integration
def test_an_unreadable_directory_under_prune_keeps_its_s3_copies(
    seaweed: Any, bucket: str, tmp_path: Path, s3_client: Any
) -> None:
    specs, root, env = pruned(tmp_path, seaweed, bucket)
    (root / "rel" / "e").mkdir(parents=True)
    (root / "rel" / "top.txt").write_bytes(b"top")
    for i in range(4):
        (root / "rel" / "e" / f"f{i}.txt").write_bytes(f"file {i}".encode())
    assert run(["apply", "--auto-approve", "--specs", str(specs)], env).code == 0
    before = keys(s3_client, bucket)
    assert len(before) == 5

    locked = root / "rel" / "e"
    locked.chmod(0)
    (root / "rel" / "new.txt").write_bytes(b"new")  # the rest of the tree still converges
    try:
        strict = run(["plan", "--strict", "--specs", str(specs)], env, no_dac=True)
        applied = run(["apply", "--auto-approve", "--specs", str(specs)], env, no_dac=True)
    finally:
        locked.chmod(0o755)

    assert keys(s3_client, bucket) == {**before, "rel/new.txt": b"new"}  # nothing under rel/e/ deleted
    assert strict.code == 1, strict.out + strict.err
    assert applied.code == 0, applied.out + applied.err
    assert "Traceback" not in applied.err
    text = applied.out + applied.err
    assert "cannot list directory" in text and "could not be observed completely" in text


@pytest.mark.integration
def test_an_unreadable_file_is_a_finding_neither_uploaded_nor_deleted(
    seaweed: Any, bucket: str, tmp_path: Path, s3_client: Any
) -> None:
    specs, root, env = pruned(tmp_path, seaweed, bucket)
    (root / "rel" / "e").mkdir(parents=True)
    (root / "rel" / "e" / "f7.txt").write_bytes(b"seven")
    assert run(["apply", "--auto-approve", "--specs", str(specs)], env).code == 0

    (root / "rel" / "e" / "f7.txt").write_bytes(b"seven, edited")  # an edit that cannot be read
    (root / "rel" / "e" / "f7.txt").chmod(0)
    (root / "rel" / "secret.txt").write_bytes(b"never read")
    (root / "rel" / "secret.txt").chmod(0)
    (root / "rel" / "ok.txt").write_bytes(b"ok")
    planned = run(["plan", "--specs", str(specs)], env, no_dac=True)
    applied = run(["apply", "--auto-approve", "--specs", str(specs)], env, no_dac=True)

    for result in (planned, applied):
        assert result.code == 0, result.out + result.err
        assert "Traceback" not in result.err and "PermissionError" not in result.err
    assert "rel/e/f7.txt" in planned.out and "cannot read" in planned.out
    assert "rel/secret.txt" in planned.out
    assert keys(s3_client, bucket) == {"rel/e/f7.txt": b"seven", "rel/ok.txt": b"ok"}
