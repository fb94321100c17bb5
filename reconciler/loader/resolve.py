"""A dataset name -> the ordered objects that hold its records.

Resolution order, the seed's: a registered name is its canonical key in its tier
(processed); when that object is absent, the dataset's declared source (raw or
acquired) with a warning naming where the records come from. Any other name is a
file name looked up under the tiers processed -> raw -> acquired (under
`category/` first when a category is given). A name with a glob character
(`cot_reasoning/*.jsonl`) or ending in "/" is a prefix of shards, matched under
the tiers in the same order; `store:key` names one object directly.

The seed scripts' own forms: `s3://BUCKET/KEY` (a key or shard pattern in any
declared store of that bucket; seed 002 writes keys from the tier roots,
`gdrive/processed/...`, seed 000 from `datasets/gdrive/...`, so a key is tried
as given and then re-rooted onto each tier: see `seed_keys`), and a local path
(`/abs`, `./rel`, `../rel`, `~/x`), read through the local store it lies under,
else from its directory directly.

Only the store's `stat` and `list` are used here; the bytes are read by the
streaming dataset (reconciler/loader/dataset.py), which takes any list of
`SourceObject`s, so other producers (the final dataset's manifest) plug in.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.loader.final import split_shards
from reconciler.loader.formats import RecordFormat, format_of
from reconciler.manifests.common import s3_uri
from reconciler.manifests.final import ManifestError
from reconciler.manifests.final import parse as parse_final
from reconciler.manifests.record_index import FIELD, index_key
from reconciler.model import (
    DatasetSpec,
    Desired,
    Entry,
    FinalDatasetSpec,
    LocalStoreSpec,
    S3StoreSpec,
    TierSpec,
    tier_of,
)
from reconciler.stores.base import Store, StoreError

TIER_ORDER = ("processed", "raw", "acquired")
FINAL_DATASET = "final_dataset"  # reserved: the published final dataset, resolved from its manifest
S3_URL = "s3://"
_GLOB = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class SourceObject:
    """One object of a dataset: where it is, what its bytes are (when known) and how to decode it."""

    store: str
    key: str
    md5: str | None
    size: int | None
    fmt: RecordFormat
    etag: str | None = None  # the version seen at resolution: a resume over an md5-less object checks it
    records: int | None = None  # when known without reading (the final dataset's manifest counts them)
    # (key in `store`, md5 of its bytes): the record index apply wrote for these bytes, as the registry vouches
    published_index: tuple[str, str] | None = None


class DatasetNotFound(LookupError):
    """No dataset of that name; `closest` lists the registered names nearest to it."""

    def __init__(self, name: str, reason: str, closest: Sequence[str] = ()) -> None:
        hint = f" (closest registered names: {', '.join(closest)})" if closest else ""
        super().__init__(f"dataset {name!r}: {reason}{hint}")
        self.name = name
        self.closest = tuple(closest)


@dataclass(frozen=True, slots=True)
class Resolved:
    name: str
    objects: tuple[SourceObject, ...]
    tier: str | None  # the tier the objects lie in, None for a local source or a direct store:key
    warnings: tuple[str, ...] = ()
    registered: DatasetSpec | None = None


def ordered_tiers(tiers: Sequence[TierSpec]) -> list[TierSpec]:
    """processed, raw, acquired first (the seed's order), then any other tier in declared order."""
    rank = {name: i for i, name in enumerate(TIER_ORDER)}
    return sorted(tiers, key=lambda t: rank.get(t.name, len(TIER_ORDER)))


def _object(store: str, entry: Entry, declared: str | None = None) -> SourceObject:
    return SourceObject(store, entry.key, entry.md5, entry.size, format_of(entry.key, declared), entry.etag)


def _readable(key: str) -> bool:
    try:
        format_of(key)
    except ValueError:
        return False
    return True


def closest_names(desired: Desired, name: str) -> list[str]:
    return difflib.get_close_matches(name, [d.name for d in desired.datasets], n=3, cutoff=0.4)


def resolve(
    desired: Desired,
    stores: Mapping[str, Store],
    name: str,
    *,
    category: str | None = None,
    split: str | None = None,
) -> Resolved:
    """The objects of dataset `name`; DatasetNotFound when there are none."""
    if name == FINAL_DATASET:
        return _final(desired, stores, split)
    if split is not None:
        raise DatasetNotFound(name, f"split={split!r} applies to the final dataset only")
    registered = next((d for d in desired.datasets if d.name == name), None)
    if registered is not None:
        return _registered(desired, stores, registered)
    if name.startswith(S3_URL):
        return _s3_url(desired, stores, name)
    if is_local_path(name):
        return _local(desired, stores, name)
    store_name, sep, key = name.partition(":")
    if sep and store_name in stores:
        return _direct(desired, stores, name, store_name, key)
    if name.endswith("/") or _GLOB & set(name):
        return _shards(desired, stores, name, category)
    return _file(desired, stores, name, category)


def _final(desired: Desired, stores: Mapping[str, Store], split: str | None) -> Resolved:
    """The published final dataset: the shards its S3 manifest names, in manifest order (every split
    in turn when no split is given). Shard keys carry their md5, so the manifest pins exact bytes."""
    final = desired.final
    if final is None:
        raise DatasetNotFound(FINAL_DATASET, "no final dataset is declared in the specs")
    store = stores[final.store]
    if store.stat(final.manifest_key) is None:
        raise DatasetNotFound(FINAL_DATASET, f"declared, but not published yet (no {final.manifest})")
    with store.open(final.manifest_key) as body:
        content = body.read()
    return final_from_manifest(final, content, split)


def final_from_manifest(final: FinalDatasetSpec, content: bytes, split: str | None) -> Resolved:
    """The final dataset's shards as `content` (its manifest, from S3 or kept locally) names them: one split, or
    every split in turn. Its keys carry their md5 and it counts their records, so it pins exact bytes."""
    try:
        splits = [split] if split is not None else list(parse_final(content).splits) or [
            name for name, _ in final.splits
        ]
        shards = [s for one in splits for s in split_shards(content, one, store=final.store)]
    except ManifestError as exc:
        raise DatasetNotFound(FINAL_DATASET, str(exc)) from exc
    objects = tuple(SourceObject(s.store, s.key, s.md5, s.size, RecordFormat.JSONL, records=s.records) for s in shards)
    return Resolved(FINAL_DATASET, objects, None)


def _registered(desired: Desired, stores: Mapping[str, Store], dataset: DatasetSpec) -> Resolved:
    entry = stores[dataset.store].stat(dataset.key)
    if entry is not None:
        index = published_index(desired, stores, dataset, entry)
        obj = dataclasses.replace(_object(dataset.store, entry, dataset.format), published_index=index)
        return Resolved(dataset.name, (obj,), dataset.tier, (), dataset)
    where = f"{dataset.store}:{dataset.key}"
    source = dataset.source
    if source is not None and source.store in stores:
        found = stores[source.store].stat(source.key)
        if found is not None:
            tier = _tier_of(desired, source.store, source.key)
            origin = f"tier {tier}" if tier else f"store {source.store}"
            warning = (
                f"dataset {dataset.name}: {where} is absent (not organised yet); "
                f"reading its source {source} in {origin}"
            )
            obj = _object(source.store, found, dataset.format)
            return Resolved(dataset.name, (obj,), tier, (warning,), dataset)
    also = f" nor its source {source}" if source is not None else ""
    raise DatasetNotFound(dataset.name, f"registered, but there is no object at {where}{also}")


def published_index(
    desired: Desired, stores: Mapping[str, Store], dataset: DatasetSpec, entry: Entry
) -> tuple[str, str] | None:
    """Where apply put the record index of the object `entry` is, and its md5, as the registry records them; None
    when it records none for these bytes (the object changed since, or no apply has indexed it) or cannot be read.
    The registry is pixel's local file: the index in S3 is trusted only as far as this digest vouches for it."""
    spec = desired.stores.get(dataset.store)
    ref = desired.registry
    if entry.md5 is None or ref is None or ref.store not in stores or not isinstance(spec, S3StoreSpec):
        return None
    key = index_key(entry.md5, dataset.format)
    try:
        with stores[ref.store].open(ref.key) as body:
            row = json.loads(body.read())["datasets"][dataset.name][FIELD]
        recorded, md5 = row["s3_path"], row["md5"]
    except (OSError, StoreError, ValueError, KeyError, TypeError):
        return None
    if recorded != s3_uri(spec, key) or not isinstance(md5, str):
        return None
    return key, md5


def _tier_of(desired: Desired, store: str, key: str) -> str | None:
    tier = tier_of(desired.tiers, store, key)
    return tier.name if tier is not None else None


def _direct(desired: Desired, stores: Mapping[str, Store], name: str, store: str, key: str) -> Resolved:
    entry = stores[store].stat(key)
    if entry is None:
        raise DatasetNotFound(name, f"no object {key!r} in store {store}", closest_names(desired, key))
    return Resolved(name, (_object(store, entry),), _tier_of(desired, store, key))


def _file(desired: Desired, stores: Mapping[str, Store], name: str, category: str | None) -> Resolved:
    tiers = ordered_tiers([t for t in desired.tiers if t.store in stores])
    for tier in tiers:
        store = stores[tier.store]
        candidates = [f"{tier.prefix}{category}/{name}"] if category else []
        candidates.append(f"{tier.prefix}{name}")
        for key in candidates:
            entry = store.stat(key)
            if entry is not None:
                return Resolved(name, (_object(tier.store, entry),), tier.name)
        # Anywhere below the tier (the seed keeps files under category directories).
        below = f"{tier.prefix}{category}/" if category else tier.prefix
        for entry in store.list(below):
            if entry.key.rsplit("/", 1)[-1] == name:
                return Resolved(name, (_object(tier.store, entry),), tier.name)
    searched = ", ".join(t.name for t in tiers) or "no tier is declared"
    where = f" in category {category}" if category else ""
    raise DatasetNotFound(
        name, f"not registered, and no file of that name{where} in the tiers ({searched})", closest_names(desired, name)
    )


def _shards(desired: Desired, stores: Mapping[str, Store], name: str, category: str | None) -> Resolved:
    pattern = name + "*" if name.endswith("/") else name
    if category:
        pattern = f"{category}/{pattern}"
    fixed = pattern[: min((pattern.index(c) for c in _GLOB if c in pattern), default=len(pattern))]
    base = fixed.rsplit("/", 1)[0] + "/" if "/" in fixed else ""
    tiers = ordered_tiers([t for t in desired.tiers if t.store in stores])
    for tier in tiers:
        found = [
            _object(tier.store, entry)
            for entry in stores[tier.store].list(tier.prefix + base)
            if fnmatch.fnmatchcase(entry.key[len(tier.prefix) :], pattern) and _readable(entry.key)
        ]
        if found:
            return Resolved(name, tuple(sorted(found, key=lambda o: o.key)), tier.name)
    searched = ", ".join(t.name for t in tiers) or "no tier is declared"
    raise DatasetNotFound(name, f"no .jsonl/.json/.jsonl.gz object matches {pattern!r} in the tiers ({searched})")


def is_local_path(name: str) -> bool:
    """The seed's local forms only: a bare `a/b.jsonl` stays a file name under the tiers."""
    return name in (".", "..", "~") or name.startswith(("/", "./", "../", "~/"))


def _local_file(name: str) -> Path:
    return Path(name).expanduser().resolve()


def _local_store_of(desired: Desired, path: Path) -> tuple[str, str] | None:
    """(store, key) of the declared local store holding `path`, the innermost root when roots nest."""
    holders = [
        (len(root.parts), store, path.relative_to(root).as_posix())
        for store, spec in desired.stores.items()
        if isinstance(spec, LocalStoreSpec)
        for root in [Path(spec.root).expanduser().resolve()]
        if path.is_relative_to(root) and path != root
    ]
    if not holders:
        return None
    _, store, key = max(holders)
    return store, key


def with_local_path(desired: Desired, name: str) -> Desired:
    """`desired`, plus a local store on the directory of local path `name` when no declared local store holds
    it: the file is then read by the same LocalStore (and its version checks) as a declared local file."""
    if not is_local_path(name):
        return desired
    path = _local_file(name)
    if _local_store_of(desired, path) is not None:
        return desired
    spec = LocalStoreSpec(name=str(path.parent), root=str(path.parent))
    return dataclasses.replace(desired, stores={**desired.stores, spec.name: spec})


def _local(desired: Desired, stores: Mapping[str, Store], name: str) -> Resolved:
    path = _local_file(name)
    held = _local_store_of(desired, path)
    store, key = held if held is not None else (str(path.parent), path.name)
    if store not in stores:
        raise DatasetNotFound(name, f"no store reads {path} (open it with load_dataset, which adds one)")
    entry = stores[store].stat(key)
    if entry is None:
        raise DatasetNotFound(name, f"no file at {path}")
    registered = next((d for d in desired.datasets if d.store == store and d.key == key), None)
    fmt = registered.format if registered is not None else None
    return Resolved(name, (_object(store, entry, fmt),), None, (), registered)


def parse_s3_url(desired: Desired, url: str) -> tuple[list[str], str]:
    """The declared S3 stores of the URL's bucket, and its key; DatasetNotFound naming the declared buckets
    when no store declares that bucket."""
    bucket, _, key = url[len(S3_URL) :].partition("/")
    s3 = {name: spec for name, spec in desired.stores.items() if isinstance(spec, S3StoreSpec)}
    names = [name for name, spec in s3.items() if spec.bucket == bucket]
    if not names:
        declared = ", ".join(sorted({spec.bucket for spec in s3.values()})) or "none"
        raise DatasetNotFound(url, f"bucket {bucket!r} is not declared by any store of the specs "
                                   f"(declared buckets: {declared})")
    if not key:
        raise DatasetNotFound(url, "the URL names a bucket, not an object or a prefix of shards")
    return names, key


def seed_keys(tiers: Sequence[TierSpec], store: str, key: str) -> list[str]:
    """`key` as given, then re-rooted onto each tier of `store` (processed, raw, acquired first).

    Seed 002 names objects from the tier roots (`s3://pixel-data/gdrive/processed/...`) while seed 000's
    sync writes them under `datasets/gdrive/...`. So a key that lacks leading parts of a tier's prefix gets
    them (`gdrive/processed/x` -> `datasets/gdrive/processed/x`), and a key with extra leading parts before a
    tier's whole prefix loses them (`datasets/gdrive/processed/x` -> `gdrive/processed/x`). Only keys that then
    lie in a declared tier are tried: the tiers are the map between the two layouts."""
    keys = [key]
    for tier in ordered_tiers([t for t in tiers if t.store == store and t.prefix]):
        parts = tier.prefix.split("/")[:-1]
        keys += [
            root + key
            for i in range(1, len(parts))
            for root in ["/".join(parts[:i]) + "/"]
            if (root + key).startswith(tier.prefix)
        ]
        own = key.split("/")
        keys += [rest for i in range(1, len(own)) for rest in ["/".join(own[i:])] if rest.startswith(tier.prefix)]
    return list(dict.fromkeys(keys))


def registered_at_url(desired: Desired, url: str) -> DatasetSpec | None:
    """The registered dataset whose canonical object the URL names (in either seed layout), if any."""
    names, key = parse_s3_url(desired, url)
    for store in names:
        for candidate in seed_keys(desired.tiers, store, key):
            found = next((d for d in desired.datasets if d.store == store and d.key == candidate), None)
            if found is not None:
                return found
    return None


def _s3_url(desired: Desired, stores: Mapping[str, Store], url: str) -> Resolved:
    names, key = parse_s3_url(desired, url)
    shards = key.endswith("/") or bool(_GLOB & set(key))
    tried: list[str] = []
    for store in names:
        for candidate in seed_keys(desired.tiers, store, key):
            tried.append(f"{store}:{candidate}")
            if shards:
                found = _matching(stores[store], store, candidate + "*" if candidate.endswith("/") else candidate)
                if found:
                    return Resolved(url, found, _tier_of(desired, store, candidate))
                continue
            registered = next((d for d in desired.datasets if d.store == store and d.key == candidate), None)
            if registered is not None:
                # Its canonical object, else its declared source with the registry's fallback warning.
                return _registered(desired, stores, registered)
            entry = stores[store].stat(candidate)
            if entry is not None:
                return Resolved(url, (_object(store, entry),), _tier_of(desired, store, candidate))
    what = "no .jsonl/.json/.jsonl.gz object matches" if shards else "no object at"
    raise DatasetNotFound(url, f"{what} {', '.join(tried)}")


def _matching(store: Store, name: str, pattern: str) -> tuple[SourceObject, ...]:
    fixed = pattern[: min((pattern.index(c) for c in _GLOB if c in pattern), default=len(pattern))]
    base = fixed.rsplit("/", 1)[0] + "/" if "/" in fixed else ""
    found = [
        _object(name, entry)
        for entry in store.list(base)
        if fnmatch.fnmatchcase(entry.key, pattern) and _readable(entry.key)
    ]
    return tuple(sorted(found, key=lambda o: o.key))


def describe(resolved: Resolved) -> dict[str, Any]:
    """One row of `list_datasets` / `pixel datasets`."""
    objects = resolved.objects
    sizes = [o.size for o in objects]
    registered = resolved.registered
    return {
        "name": resolved.name,
        "tier": resolved.tier,
        "category": registered.category if registered else None,
        "format": objects[0].fmt.value if objects else None,
        "keys": [f"{o.store}:{o.key}" for o in objects],
        "size": sum(s for s in sizes if s is not None) if None not in sizes else None,
        "md5": objects[0].md5 if len(objects) == 1 else None,
        "md5s": [o.md5 for o in objects],
        "warnings": list(resolved.warnings),
    }
