"""The final dataset's manifest: its JSON shape, the build identity, and reading it back. Pure.

The planner compares a published manifest with the specs, the compile action
writes one, `pixel status` and the inventory summarise one, and the loader
follows one: all through this module, so the format is defined once.

A manifest lists every shard (split, id, key, s3 URL, md5, size, records) in
manifest order (the splits in their declared order, each split's shards by
index), per-split totals, the compiled export, the sources with their md5s, the
recipe it was built with (and its digest), the record counts of the build and
its creation time. `build` is a digest of the recipe and the sources' md5s:
equal builds have equal shards. `history` lists the keys earlier builds wrote
that this one no longer names and that were still in S3 when it was published:
with the shards and the export, the only keys other than its shard names that
a rebuild may delete under the prefix (`written`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.model import FinalDatasetSpec

FORMAT = "pixel-final-dataset"
VERSION = 1


class ManifestError(ValueError):
    """A published manifest that is not one pixel can follow."""


def build_id(final: FinalDatasetSpec, source_md5s: Mapping[str, str]) -> str:
    """32 hex digits naming what a build is made of: the recipe and every source's md5."""
    parts = [final.recipe_digest] + [f"{s.name}\0{s.key}\0{source_md5s[s.name]}" for s in final.sources]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:32]


def s3_url(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def shard_key(final: FinalDatasetSpec, split: str, index: int, md5: str) -> str:
    """{prefix}{split}/shard-{index}-{md5[:12]}.jsonl: a shard of another content never takes an existing key."""
    return f"{final.prefix}{split}/shard-{index:05d}-{md5[:12]}.jsonl"


_SHARD_NAME = re.compile(r"shard-\d{5}-([0-9a-f]{12})\.jsonl")


def shard_name_md5(final: FinalDatasetSpec, key: str) -> str | None:
    """The md5 prefix a key of this dataset's shard scheme carries ({prefix}{split}/shard-N-md5.jsonl, a declared
    split), else None: such a key is one a build of this dataset writes, even when no manifest names it yet."""
    if not key.startswith(final.prefix):
        return None
    split, slash, name = key[len(final.prefix) :].partition("/")
    if not slash or split not in {name for name, _ in final.splits}:
        return None
    match = _SHARD_NAME.fullmatch(name)
    return match.group(1) if match else None


def render(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class Shard:
    split: str
    key: str
    md5: str
    size: int
    records: int


@dataclass(frozen=True, slots=True)
class Published:
    """A manifest as the planner and the loader read it."""

    document: dict[str, Any]
    build: str
    recipe: dict[str, Any]
    sources: dict[str, tuple[str, str]]  # name -> (key, md5)
    shards: tuple[Shard, ...]
    compiled: Shard | None
    splits: dict[str, dict[str, int]]  # split -> shards, records, bytes
    history: tuple[str, ...] = ()  # keys earlier builds wrote that this one does not name, still there when written

    def written(self) -> frozenset[str]:
        """Every key this dataset's builds wrote, as far as this manifest knows: its shards, export and history."""
        return frozenset(
            [s.key for s in self.shards] + ([self.compiled.key] if self.compiled is not None else []) + [*self.history]
        )


def _shard(item: Any, where: str) -> Shard:
    if not isinstance(item, dict):
        raise ManifestError(f"{where}: expected an object")
    try:
        return Shard(
            split=str(item.get("split", "")),
            key=str(item["key"]),
            md5=str(item["md5"]),
            size=int(item["size"]),
            records=int(item["records"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: expected key, md5, size and records ({exc})") from exc


def parse(content: bytes | str | Mapping[str, Any]) -> Published:
    """The manifest's parts; ManifestError when it is not a pixel final-dataset manifest."""
    if isinstance(content, bytes | str):
        try:
            document = json.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"not JSON ({exc})") from exc
    else:
        document = dict(content)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ManifestError(f"not a {FORMAT} manifest")
    if document.get("version") != VERSION:
        raise ManifestError(f"manifest version {document.get('version')!r} is not {VERSION}")
    shards = document.get("shards")
    sources = document.get("sources")
    if not isinstance(shards, list) or not isinstance(sources, list):
        raise ManifestError("expected lists of shards and sources")
    parsed_sources: dict[str, tuple[str, str]] = {}
    for index, source in enumerate(sources):
        if not isinstance(source, dict) or not all(isinstance(source.get(f), str) for f in ("name", "key", "md5")):
            raise ManifestError(f"sources[{index}]: expected name, key and md5")
        parsed_sources[source["name"]] = (source["key"], source["md5"])
    history = document.get("history", [])
    if not isinstance(history, list) or not all(isinstance(key, str) for key in history):
        raise ManifestError("history: expected a list of keys")
    compiled = document.get("compiled")
    recipe = document.get("recipe")
    splits = document.get("splits")
    return Published(
        document=document,
        build=str(document.get("build", "")),
        recipe=recipe if isinstance(recipe, dict) else {},
        sources=parsed_sources,
        shards=tuple(_shard(item, f"shards[{i}]") for i, item in enumerate(shards)),
        compiled=_shard(compiled, "compiled") if compiled is not None else None,
        splits=splits if isinstance(splits, dict) else {},
        history=tuple(history),
    )


def summary(published: Published) -> dict[str, Any]:
    """What `pixel status` and the inventory show of a published final dataset."""
    shards = published.shards
    return {
        "build": published.build,
        "created": published.document.get("created"),
        "splits": {
            name: {
                "shards": int(totals.get("shards", 0)),
                "records": int(totals.get("records", 0)),
                "bytes": int(totals.get("bytes", 0)),
            }
            for name, totals in published.splits.items()
            if isinstance(totals, dict)
        },
        "shards": len(shards),
        "records": sum(s.records for s in shards),
        "bytes": sum(s.size for s in shards),
        "compiled": None if published.compiled is None else {
            "key": published.compiled.key,
            "bytes": published.compiled.size,
            "records": published.compiled.records,
        },
    }


def summary_of(content: bytes | None) -> dict[str, Any] | None:
    """The summary of a published manifest's bytes; None when there is none pixel can follow."""
    if content is None:
        return None
    try:
        return summary(parse(content))
    except ManifestError:
        return None
