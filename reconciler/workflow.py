"""Wiring the edges to the core: specs -> stores -> observed -> plan.

Commands call these; the planner itself stays pure in `reconciler.plan.diff`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import UserError
from reconciler.logs import get_logger
from reconciler.model import Authority, Desired, LocalStoreSpec, Observed, Plan, Problem, S3StoreSpec
from reconciler.observe import Hasher, StreamingHasher, observe
from reconciler.observe.hashcache import CachedHasher
from reconciler.observe.world import expand_actors
from reconciler.plan import plan as make_plan
from reconciler.stores.base import Store, StoreError
from reconciler.stores.local import LocalStore
from reconciler.stores.s3 import S3Store


@dataclass
class Workspace:
    desired: Desired
    stores: dict[str, Store]
    problems: list[Problem] = field(default_factory=list)


def open_stores(desired: Desired, *, parallelism: int = 16) -> Workspace:
    """Build a Store per spec and check each is usable before anything is read or written."""
    problems: list[Problem] = []
    stores: dict[str, Store] = {}
    for name, spec in sorted(desired.stores.items()):
        if isinstance(spec, S3StoreSpec):
            s3 = S3Store(spec, max_pool_connections=parallelism + 8, list_concurrency=parallelism)
            try:
                s3.check_bucket()
            except StoreError as exc:
                raise UserError(str(exc)) from exc
            stores[name] = s3
        elif isinstance(spec, LocalStoreSpec):
            stores[name] = LocalStore(name, spec.root, on_problem=problems.append)
    try:
        desired = expand_actors(desired, stores)
    except StoreError as exc:
        raise UserError(f"could not list the actor directories: {exc}") from exc
    actor_mappings = {actor.mapping for actor in desired.actors}
    for mapping in desired.mappings:
        if mapping.name in actor_mappings:
            continue  # an actor whose images are only in S3 has no local directory yet: that is a state, not a typo
        local = desired.stores[mapping.local_store]
        assert isinstance(local, LocalStoreSpec)
        directory = Path(local.root) / mapping.local_path
        # A missing source directory under push would read as "delete everything": refuse instead.
        if mapping.authority is not Authority.S3 and not directory.is_dir():
            where = f"{mapping.source_file}: " if mapping.source_file else ""
            raise UserError(
                f"{where}mappings[{mapping.name}].from: local directory {directory} does not exist "
                f"(store {mapping.local_store!r}, root {local.root})"
            )
    return Workspace(desired, stores, problems)


def observe_and_plan(
    ws: Workspace,
    hasher: Hasher | None = None,
    *,
    rehash_all: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> tuple[Observed, Plan]:
    """Observe and plan. Without a `hasher`, local md5s come from the hash cache (read all with `rehash_all`)."""
    own = CachedHasher(rehash_all=rehash_all) if hasher is None else None
    try:
        observed = observe(
            ws.desired, ws.stores, own or hasher or StreamingHasher(), problems=ws.problems, progress=progress
        )
    except StoreError as exc:
        raise UserError(f"could not read the stores: {exc}") from exc
    finally:
        if own is not None:
            own.close()
            get_logger("pixel.observe").info(
                "local files hashed",
                read=own.files_read,
                bytes_read=own.bytes_read,
                from_cache=own.cache_hits,
            )
    return observed, make_plan(ws.desired, observed)
