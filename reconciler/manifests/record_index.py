"""Where apply keeps a registered dataset's record index in S3, and how the registry vouches for it.

The index (loader/index.py's format: record count, and the spans of a big JSON
Lines object with their digests) is a function of the object's bytes, so it is
kept under the object's md5 and the index format's version:
`.pixel/index/v<version>/<md5>.<format>.json` in the dataset's own S3 store,
in pixel's own space (no mapping lists, pulls or prunes it). An object that
changes gets a new key; the old index is never wrong, only unused, so nothing
deletes it. So is an index of an older format: a new
version is a new key, which the plan finds absent and apply writes (an index
is never replaced in place), and the registry then records it.

Anyone who can write the bucket can write that key, so the loader trusts an
index only when its bytes hash to the digest the registry records beside the
dataset (`record_index` in its entry): the registry is rendered by pixel after
the index is written, from the index's md5 as the store reports it.
"""

from __future__ import annotations

from typing import Any

from reconciler.model import PIXEL_PREFIX, Entry

INDEX_PREFIX = f"{PIXEL_PREFIX}index/"
# The layout of loader/index.py's index: 2 cuts spans on a grid (a small first span) and gives each a SHA-256.
INDEX_VERSION = 2
INDEXED_FORMATS = ("json", "jsonl")  # the formats a registered dataset may declare
FIELD = "record_index"  # the registry entry's field


def index_key(md5: str, fmt: str) -> str:
    # By format too, as the loader's local IndexStore: the same bytes read as another format are other records.
    return f"{INDEX_PREFIX}v{INDEX_VERSION}/{md5}.{fmt}.json"


def registry_field(key_uri: str, index: Entry | None) -> dict[str, Any] | None:
    """The registry entry's `record_index`: where the index is and the md5 its bytes must have."""
    if index is None or index.md5 is None:
        return None
    # In sorted order, as a registry rendered from nothing writes it: a rewrite then changes no byte.
    return {"md5": index.md5, "s3_path": key_uri}
