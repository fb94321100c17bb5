"""A split's shards from a published manifest, in manifest order: the loader's view of the final dataset."""

from __future__ import annotations

import json

import pytest

from reconciler.loader.final import ShardRef, split_shards
from reconciler.manifests.final import FORMAT, ManifestError


def _manifest(shards: list[tuple[str, str]]) -> dict[str, object]:
    return {
        "format": FORMAT, "version": 1, "build": "b", "sources": [],
        "splits": {"train": {}, "validation": {}, "test": {}},
        "shards": [{"split": s, "key": k, "md5": k[-1] * 32, "size": len(k), "records": 3} for s, k in shards],
    }


def test_the_split_in_manifest_order_from_bytes_or_dict() -> None:
    document = _manifest([("train", "t/b"), ("validation", "v/a"), ("train", "t/a"), ("train", "t/c")])
    want = [ShardRef("lake", k, k[-1] * 32, 3, 3) for k in ("t/b", "t/a", "t/c")]
    assert split_shards(document, "train", store="lake") == want
    assert split_shards(json.dumps(document).encode(), "train", store="lake") == want
    assert split_shards(document, "test", store="lake") == []  # declared, no records


def test_unknown_split_and_foreign_manifest_are_refused() -> None:
    with pytest.raises(ManifestError, match=r"no split 'dev' in the final dataset \(splits: train, validation, test\)"):
        split_shards(_manifest([]), "dev", store="lake")
    with pytest.raises(ManifestError, match="not a pixel-final-dataset manifest"):
        split_shards(b'{"shards": []}', "train", store="lake")
    with pytest.raises(ManifestError, match="shards\\[0\\]"):
        split_shards({**_manifest([]), "shards": [{"split": "train"}]}, "train", store="lake")
