"""`pixel verify` covers every managed object on SeaweedFS, not just the keys of declared mappings.

Discovered actors (found from directory names at run time), listed actors and
datasets' canonical objects are all checked: a wrong recorded md5 on any of
them is reported by name and exits 1.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pixelenv import Run, pixel_in_process

pytestmark = pytest.mark.integration

DISCOVERED = "0007_nordic_41_female"
LISTED = "0042_european_30_male"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def write_world(tmp_path: Path, endpoint: str, bucket: str) -> Path:
    root = tmp_path / "data"
    # Only the listed actor has a local directory: the other is discovered from its S3 prefix alone.
    (root / "actors" / LISTED / "training_data").mkdir(parents=True)
    (root / "manifests").mkdir()
    (root / "v").mkdir()
    (root / "v" / "plain.txt").write_bytes(b"plain")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "specs.yaml").write_text(
        f"""stores:
  s3:
    type: s3
    bucket: {bucket}
    endpoint: {endpoint}
    region: us-east-1
    addressing_style: path
    checksum: when_required
  disk:
    type: local
    root: {root}
mappings:
  - name: plain
    from: disk:v
    to: s3:v/
tiers:
  processed:
    at: s3:processed/
    categories: [cot_reasoning]
  actors:
    at: s3:actors/
    ownership: shared
datasets:
  items:
    - name: clinical_cot
      tier: processed
      category: cot_reasoning
      format: jsonl
    - name: not_organised_yet
      tier: processed
      category: cot_reasoning
      format: jsonl
actors:
  local: disk:actors
  s3: s3:actors/
  manifests: disk:manifests
  authority: none
  images: "{{actor_name}}_*.jpg"
  discover: '^(?P<id>\\d{{4}})_[a-z]+_\\d+_(male|female)$'
  list:
    - id: "0042"
      name: {LISTED}
"""
    )
    return specs


def verify(specs: Path, env: dict[str, str]) -> Run:
    return pixel_in_process(["verify", "--specs", str(specs)], env)


def test_verify_reports_a_wrong_md5_on_a_discovered_actor_a_listed_actor_and_a_dataset(
    seaweed: Any, bucket: str, tmp_path: Path
) -> None:
    specs = write_world(tmp_path, seaweed.endpoint, bucket)
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    client = seaweed.client()

    def put(key: str, body: bytes, recorded: bytes | None = None) -> None:
        recorded_md5 = md5(body if recorded is None else recorded)
        client.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"md5": recorded_md5})

    put("v/plain.txt", b"plain")
    put(f"actors/{DISCOVERED}/{DISCOVERED}_0.jpg", b"jpeg 0")
    put(f"actors/{DISCOVERED}/{DISCOVERED}_1.jpg", b"jpeg 1")
    put(f"actors/{LISTED}/{LISTED}_0.jpg", b"jpeg 42")
    put("processed/cot_reasoning/clinical_cot.jsonl", b'{"q": 1}\n')

    clean = verify(specs, env)
    assert clean.code == 0, clean.out + clean.err
    # 1 mapped object, 3 actor images (2 of a discovered actor), 1 dataset; the other dataset is not there yet.
    assert "Verified 5 object(s) (recorded hashes only): 0 mismatch(es), 0 without a recorded md5." in clean.out
    assert "- s3:processed/cot_reasoning/not_organised_yet.jsonl: dataset 'not_organised_yet': not in S3 yet" in (
        clean.out
    )

    # Damage the recorded md5 of a discovered actor's image, a listed actor's image and a dataset's canonical object.
    put(f"actors/{DISCOVERED}/{DISCOVERED}_1.jpg", b"jpeg 1", recorded=b"something else")
    put(f"actors/{LISTED}/{LISTED}_0.jpg", b"jpeg 42", recorded=b"not 42")
    put("processed/cot_reasoning/clinical_cot.jsonl", b'{"q": 1}\n', recorded=b"stale")
    damaged = verify(specs, env)
    assert damaged.code == 1, damaged.out + damaged.err
    assert (
        f"✗ s3:actors/{DISCOVERED}/{DISCOVERED}_1.jpg: metadata records md5 {md5(b'something else')} "
        f"but the ETag is md5 {md5(b'jpeg 1')}"
    ) in damaged.out
    assert f"✗ s3:actors/{LISTED}/{LISTED}_0.jpg: metadata records md5 {md5(b'not 42')}" in damaged.out
    assert f"✗ s3:processed/cot_reasoning/clinical_cot.jsonl: metadata records md5 {md5(b'stale')}" in damaged.out
    assert f"{DISCOVERED}_0.jpg" not in damaged.out  # intact, only counted
    assert "Verified 5 object(s) (recorded hashes only): 3 mismatch(es)" in damaged.out
    assert "3 object(s) do not match their recorded md5" in damaged.err
