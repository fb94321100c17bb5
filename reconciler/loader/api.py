"""`load_dataset` and `list_datasets`: the training side's entry points, on the same specs and stores as apply."""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict, Unpack

from reconciler.loader.cache import ObjectCache, Verify
from reconciler.loader.dataset import DEFAULT_SHUFFLE_BLOCK, OnError, StreamingDataset
from reconciler.loader.offline import UNREACHABLE, NotCachedOffline, OfflineWarning, resolve_offline
from reconciler.loader.resolve import (
    S3_URL,
    DatasetNotFound,
    Resolved,
    describe,
    is_local_path,
    registered_at_url,
    resolve,
    with_local_path,
)
from reconciler.loader.sharding import Partition
from reconciler.loader.storeset import StoreSet
from reconciler.model import Desired, S3StoreSpec
from reconciler.paths import dataset_cache_dir
from reconciler.stores.base import Store, TransientStoreError

DEFAULT_CACHE_LIMIT = "20GiB"
SPECS_ENV = "PIXEL_SPECS"


class SpecsNotFound(FileNotFoundError):
    """Neither PIXEL_SPECS nor a specs/ directory here or above says where the specs are."""


def find_specs(cwd: str | Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The specs a call without `specs` means: $PIXEL_SPECS, else the nearest `specs/` directory in the
    working directory or above it (as git finds `.git`), so a script run from any subdirectory of the
    repository finds them."""
    env = os.environ if env is None else env
    named = env.get(SPECS_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.exists():
            raise SpecsNotFound(f"{SPECS_ENV}={named}: no such file or directory")
        return path
    here = Path.cwd() if cwd is None else Path(cwd)
    here = here.resolve()
    for directory in (here, *here.parents):
        if (directory / "specs").is_dir():
            return directory / "specs"
    raise SpecsNotFound(
        f"no specs found: {SPECS_ENV} is not set and there is no specs/ directory in {here} or any directory "
        f"above it (set {SPECS_ENV}, or pass specs=...)"
    )


class DatasetStatus(enum.StrEnum):
    """Where a registered dataset is read from now (the `status` of `list_datasets` and `pixel datasets`)."""

    PRESENT = "present"  # its canonical object
    FALLBACK = "fallback"  # its source (raw or acquired): not organised into processed yet
    ABSENT = "absent"


class DatasetFallbackWarning(UserWarning):
    """A registered dataset was read from its source (raw or acquired): it is not organised into processed yet."""


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    return dataset_cache_dir(env)


def desired_from(specs: str | Path | Desired) -> Desired:
    if isinstance(specs, Desired):
        return specs
    from reconciler.spec import load_specs

    loaded = load_specs(Path(specs), os.environ)
    if isinstance(loaded, Desired):
        return loaded
    raise loaded


def _dataset_class() -> type[StreamingDataset]:
    """A torch IterableDataset too when torch is in use, so DataLoader treats it as an iterable dataset."""
    if "torch" in sys.modules:
        from reconciler.loader.torch_compat import TorchStreamingDataset

        return TorchStreamingDataset
    return StreamingDataset


class DatasetOptions(TypedDict, total=False):
    """load_dataset's options (all optional; defaults in brackets)."""

    category: str | None  # for a file name: look under this category first [None]
    split: str | None  # the final dataset's split [None]
    shuffle: bool  # units (objects, spans) and records in blocks in an order fixed by seed and epoch [False]
    shuffle_block: int  # records shuffled among at once, per consumer [16384]
    partition: Partition  # the remainder of records over ranks: "drop" it or "pad" by repeats ["drop"]
    index_dir: str | Path | None  # record indexes, e.g. on storage all nodes share [<cache_dir>/indexes]
    seed: int  # [0]
    rank: int | None  # [RANK from the environment, else 0]
    world_size: int | None  # [WORLD_SIZE from the environment, else 1]
    cache_dir: str | Path | None  # [$PIXEL_CACHE_DIR/datasets, else ~/.cache/pixel/datasets]
    cache_limit: int | str | None  # bytes or "20GiB"; None: unbounded ["20GiB"]
    on_error: OnError  # a malformed record: "raise" or "skip" (counted, logged) ["raise"]
    offline: bool  # never contact S3: resolve from local files, read verified cached copies only [False]
    verify: Verify  # a cache hit: "stat" (its recorded identity, md5 when that differs) or "always" (md5) ["stat"]


def open_dataset(
    desired: Desired,
    name: str,
    *,
    stores: Mapping[str, Store] | None = None,
    cache: bool = True,
    **options: Unpack[DatasetOptions],
) -> tuple[StreamingDataset, Resolved]:
    desired = with_local_path(desired, name)
    if stores is None or (isinstance(stores, StoreSet) and set(stores) != set(desired.stores)):
        # A local path outside every declared store brought a store of its own; the set is lazy, nothing is lost.
        stores = StoreSet(desired.stores)
    resolved = _resolve(desired, stores, name, options)
    cache_dir = options.get("cache_dir") or default_cache_dir()
    object_cache = (
        ObjectCache(cache_dir, options.get("cache_limit", DEFAULT_CACHE_LIMIT), verify=options.get("verify", "stat"))
        if cache
        else None
    )
    dataset = _dataset_class()(
        resolved.objects,
        stores,
        name=name,
        shuffle=options.get("shuffle", False),
        seed=options.get("seed", 0),
        rank=options.get("rank"),
        world_size=options.get("world_size"),
        cache=object_cache,
        on_error=options.get("on_error", "raise"),
        offline=options.get("offline", False) and _needs_s3(desired, resolved),
        partition=options.get("partition", "drop"),
        shuffle_block=options.get("shuffle_block", DEFAULT_SHUFFLE_BLOCK),
        index_dir=options.get("index_dir") or (Path(cache_dir) / "indexes"),
    )
    return dataset, resolved


def _needs_s3(desired: Desired, resolved: Resolved) -> bool:
    """Offline means no S3: a local file (a local path, a dataset in a local store) is read as it is, with
    the local store's version check, rather than refused for having no md5 to find a cached copy by."""
    return any(isinstance(desired.stores.get(o.store), S3StoreSpec) for o in resolved.objects)


def _resolve(desired: Desired, stores: Mapping[str, Store], name: str, options: DatasetOptions) -> Resolved:
    """Through S3; offline (or when S3 does not answer) from the local registry or kept final manifest."""
    category, split = options.get("category"), options.get("split")
    if options.get("offline", False):
        return _resolve_without_s3(desired, stores, name, category, split)
    try:
        return resolve(desired, stores, name, category=category, split=split)
    except TransientStoreError as exc:
        try:
            resolved = _resolve_without_s3(desired, stores, name, category, split)
        except DatasetNotFound as offline:
            raise NotCachedOffline(f"{name}: {UNREACHABLE} ({exc}), and {offline}") from exc
        note = f"{UNREACHABLE} ({exc}): {name} was resolved from local files, its records come from the cache"
        return dataclasses.replace(resolved, warnings=(*resolved.warnings, note))


def _resolve_without_s3(
    desired: Desired, stores: Mapping[str, Store], name: str, category: str | None, split: str | None
) -> Resolved:
    """The offline rules (reconciler/loader/offline.py) for the seed's call forms too: a local path needs no
    S3; an s3:// URL naming a registered dataset's object is that dataset, pinned by the registry's md5."""
    if is_local_path(name):
        return resolve(desired, stores, name)
    if name.startswith(S3_URL):
        registered = registered_at_url(desired, name)
        if registered is None:
            raise DatasetNotFound(
                name, "offline, an s3:// URL resolves only when it names a registered dataset's object (pinned "
                      "by the registry's md5); any other object needs S3 to be listed or looked at",
            )
        return resolve_offline(desired, stores, registered.name)
    return resolve_offline(desired, stores, name, category=category, split=split)


def load_dataset(
    name: str, specs: str | Path | Desired = "specs", **options: Unpack[DatasetOptions]
) -> StreamingDataset:
    """The records of dataset `name`: a registry name, a file name under the tiers, a shard pattern,
    `store:key`, `s3://BUCKET/KEY` (either seed layout), or a local path (`./x.jsonl`, `/abs`, `~/x`).

    Iterate it for dicts. Options: see DatasetOptions. Raises DatasetNotFound (with the closest
    registered names) when nothing matches; warns with DatasetFallbackWarning when a registered
    dataset is read from its source.
    """
    dataset, resolved = open_dataset(desired_from(specs), name, **options)
    for message in resolved.warnings:
        category = OfflineWarning if message.startswith(UNREACHABLE) else DatasetFallbackWarning
        warnings.warn(message, category, stacklevel=2)
    return dataset


def dataset_rows(desired: Desired, stores: Mapping[str, Store], tier: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for registered in desired.datasets:
        try:
            row = describe(resolve(desired, stores, registered.name))
            row["status"] = DatasetStatus.FALLBACK if row["warnings"] else DatasetStatus.PRESENT
        except DatasetNotFound as exc:
            row = {"name": registered.name, "tier": None, "category": registered.category,
                   "format": registered.format, "keys": [], "size": None, "md5": None, "md5s": [],
                   "warnings": [str(exc)], "status": DatasetStatus.ABSENT}
        if tier is None or row["tier"] == tier:
            rows.append(row)
    return rows


def list_datasets(specs: str | Path | Desired = "specs", tier: str | None = None) -> list[dict[str, Any]]:
    """Every registered dataset: name, the tier it resolves to now, its key(s), size and md5, and status
    (present, fallback: read from its source, absent). With `tier`, only those resolving there."""
    desired = desired_from(specs)
    return dataset_rows(desired, StoreSet(desired.stores), tier)
