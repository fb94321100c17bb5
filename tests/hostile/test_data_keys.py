"""Keys a server or a local tree cannot hold as named: a finding, never an action that fails forever.

- SeaweedFS stores `back\\slash.txt` as `back/slash.txt`: later plans proposed a move between the two
  spellings that failed with 412 on every apply, each time saying "applying again converges".
- A pull of `a` and `a/b`: a local tree cannot have a file and a directory of one name; every apply
  failed with "appeared during the write".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.hostile.data_helpers import keys, one_mapping, run

pytestmark = pytest.mark.integration


def test_a_key_the_server_renames_is_a_finding_not_a_move_that_fails_forever(
    seaweed: Any, bucket: str, tmp_path: Path, s3_client: Any
) -> None:
    specs, root, env = one_mapping(tmp_path, seaweed, bucket, **{"from": "disk:rel", "to": "s3:rel/", "prune": True})
    (root / "rel").mkdir()
    (root / "rel" / "back\\slash.txt").write_bytes(b"backslash")
    (root / "rel" / "plain.txt").write_bytes(b"plain")
    first = run(["apply", "--auto-approve", "--specs", str(specs)], env)
    assert first.code == 0, first.out + first.err
    stored = keys(s3_client, bucket)
    assert stored.get("rel/plain.txt") == b"plain" and b"backslash" in stored.values()

    again = run(["plan", "--detailed-exitcode", "--specs", str(specs)], env)
    assert again.code == 0, again.out + again.err  # 0: no changes; 2 would be the move that can never work
    assert set(stored) == {"rel/back/slash.txt", "rel/plain.txt"}  # what this SeaweedFS does with the name
    assert "does not keep '\\' in key names" in again.out
    applied = run(["apply", "--auto-approve", "--specs", str(specs)], env)
    assert applied.code == 0, applied.out + applied.err
    assert keys(s3_client, bucket) == stored
    assert "applying again converges" not in applied.out + applied.err


def test_pulling_a_file_and_a_directory_of_one_name_is_a_finding_and_the_rest_converges(
    seaweed: Any, bucket: str, tmp_path: Path, s3_client: Any
) -> None:
    specs, root, env = one_mapping(
        tmp_path, seaweed, bucket, **{"from": "disk:got", "to": "s3:pull/", "authority": "s3"}
    )
    for key, body in {"pull/a": b"file a", "pull/a/b": b"file a/b", "pull/c": b"c"}.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)

    applied = run(["apply", "--auto-approve", "--specs", str(specs)], env)
    assert applied.code == 0, applied.out + applied.err
    assert (root / "got" / "c").read_bytes() == b"c"
    assert "'a' is a file and also a directory" in applied.out + applied.err
    again = run(["plan", "--detailed-exitcode", "--specs", str(specs)], env)
    assert again.code == 0, again.out + again.err
    assert "'a' is a file and also a directory" in again.out
