"""Actor images: exactly `{actor_name}_{index}.jpg` directly in training_data/, and every manifest md5 known.

- The images glob `{actor_name}_*.jpg` matched at any depth: `training_data/sub/x_99.jpg` was uploaded
  to a nested key. Anything but a decimal index directly in training_data/ is an orphan now.
- An S3-only image whose md5 is unknown (a multipart ETag) kept `md5_hash: null` in its manifest
  forever: it is rehashed now, like an object on both sides.
"""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.model import FindingKind
from tests.unit.manifests.world import World, build, jpeg, md5

ACTOR = "0007_asian_25_female"
LOCAL = f"data/actors/{ACTOR}/training_data"
S3 = f"system_actors/training_data/{ACTOR}"
MANIFEST = "data/actor_manifests/0007_manifest.json"


def world(tmp_path: Path) -> World:
    return build(tmp_path)


def test_only_decimal_indexes_directly_in_training_data_are_images(tmp_path: Path) -> None:
    w = world(tmp_path)
    strays = [f"{LOCAL}/sub/{ACTOR}_99.jpg", f"{LOCAL}/{ACTOR}_x.jpg", f"{LOCAL}/{ACTOR}_.jpg",
              f"{LOCAL}/{ACTOR}_1a.jpg"]
    for i, key in enumerate(strays):
        w.ws.put(key, jpeg(100 + i))
    plan, result, _ = w.apply()
    assert result.ok
    assert sorted(k for k in w.assets if k.startswith(S3)) == [f"{S3}/{ACTOR}_0.jpg", f"{S3}/{ACTOR}_1.jpg"]
    orphans = {f.key for f in plan.findings if f.kind is FindingKind.ORPHAN}
    assert all(any(key in o for o in orphans) for key in strays), orphans
    manifest = json.loads(w.ws.get(MANIFEST))
    assert sorted(manifest["accountability"]["orphans"]) == sorted(strays)


def test_an_s3_only_image_with_an_unknown_md5_is_rehashed_into_its_manifest(tmp_path: Path) -> None:
    w = world(tmp_path)
    only_in_s3 = jpeg(55)
    w.assets.put(f"{S3}/{ACTOR}_5.jpg", only_in_s3, foreign=True)  # multipart ETag: md5 unknown
    plan, result, _ = w.apply()
    assert result.ok
    assert f"rehash:assets:{S3}/{ACTOR}_5.jpg" in {a.id for a in plan.actions}
    entries = {e["filename"]: e for e in json.loads(w.ws.get(MANIFEST))["training_data"]}
    assert entries[f"{ACTOR}_5.jpg"]["md5_hash"] == md5(only_in_s3)
    assert entries[f"{ACTOR}_5.jpg"]["status"] == "s3_only"
    assert all(e["md5_hash"] for e in entries.values())
    assert not w.plan().actions  # and it stays known: nothing left to do
