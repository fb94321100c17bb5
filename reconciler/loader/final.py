"""The published final dataset as the loader reads it: one split's shards, in manifest order. Pure.

`load_dataset("final_dataset", split=...)` streams these references one after
the other; the manifest (bytes as fetched, or already parsed) is the only input,
so a reader follows exactly the build the manifest describes, whose shards a
rebuild never overwrites (their keys carry their md5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.manifests.final import ManifestError, parse


@dataclass(frozen=True, slots=True)
class ShardRef:
    """One shard to stream: where it is and what its bytes must hash to."""

    store: str
    key: str
    md5: str
    size: int
    records: int


def split_shards(manifest: bytes | str | Mapping[str, Any], split: str, *, store: str) -> list[ShardRef]:
    """The shards of `split` in manifest order; `store` names the store the manifest was read from.

    ManifestError for a manifest pixel cannot follow, or a split it does not have (naming those it has).
    """
    published = parse(manifest)
    splits = list(published.splits) or sorted({s.split for s in published.shards})
    if split not in splits:
        raise ManifestError(f"no split {split!r} in the final dataset (splits: {', '.join(splits) or 'none'})")
    return [ShardRef(store, s.key, s.md5, s.size, s.records) for s in published.shards if s.split == split]
