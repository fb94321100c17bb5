"""Wiring the edges to the core: Desired -> stores opened and checked, actors discovered -> Observed -> plan.

Commands and the service call these. Everything here may do I/O (stores, the hash cache, S3 Inventory
reports) so that the planner (`reconciler.plan.plan`, the passes of `plan/planner.py`) does none; the delete
guards run here against the full specs, even under --target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import UserError
from reconciler.keys import printable
from reconciler.logs import get_logger
from reconciler.model import Authority, Desired, LocalStoreSpec, Observed, Plan, S3StoreSpec
from reconciler.observe import Hasher, StreamingHasher, observe
from reconciler.observe.hashcache import CachedHasher
from reconciler.observe.world import discover_actors
from reconciler.plan import guards
from reconciler.plan import plan as make_plan
from reconciler.plan.guards import GuardLimits
from reconciler.stores.base import ChecksOnFirstUse, ChecksReachable, Store, StoreError, StoreUnusable
from reconciler.stores.factory import build_store
from reconciler.targets import narrow
from reconciler.workspace import Workspace


def from_inventory(ws: Workspace, relist: tuple[str, ...] = (), *, spool: Path | None = None) -> Workspace:
    """`ws`, with every S3 store that declares `inventory:` observed from its newest S3 Inventory report.

    With `spool` (`--scale stream`), a directory the caller removes: the reports are read as streams, their
    data files kept there, instead of read into memory.
    """
    # Imported here: a live listing, the warm path's, never reads an inventory report.
    from reconciler.observe.inventory import InventoryError, Report, inventory_views

    reports: dict[str, tuple[Store, str]] = {}
    for name, spec in sorted(ws.desired.stores.items()):
        if isinstance(spec, S3StoreSpec) and spec.inventory is not None:
            holder = dataclasses.replace(spec, name=f"{name} (inventory)", bucket=spec.inventory.bucket, inventory=None)
            reports[name] = (build_store(holder), spec.inventory.prefix)
    if not reports:
        raise UserError(
            "--observe inventory: no S3 store in the specs declares `inventory: {bucket, prefix}` "
            "(where S3 Inventory delivers its reports)"
        )
    log = get_logger("pixel.observe")

    def said(name: str, report: Report) -> None:
        log.info(
            "observing from an S3 Inventory report",
            store=name,
            manifest=report.manifest,
            created=report.created.strftime("%Y-%m-%dT%H:%MZ"),
            age=report.age(datetime.now(UTC)),
            objects=report.count,
            listed_live=",".join(relist) or "-",
        )

    try:
        views = inventory_views(ws.stores, reports, relist, log=said, spool=spool)
    except (InventoryError, StoreError) as exc:
        raise UserError(f"--observe inventory: {exc}") from exc
    return dataclasses.replace(ws, observed_through=views)


def open_stores(desired: Desired, *, parallelism: int = 16, on_first_use: bool = False) -> Workspace:
    """Build a Store per spec and check each is usable before anything is read or written.

    `on_first_use`: where a store can, its first request is the check (a plan's first listing page goes out
    with no round trip ahead of it); the same errors, raised by whatever first reads or writes."""
    stores: dict[str, Store] = {}
    for name, spec in sorted(desired.stores.items()):
        try:  # inside: a store whose credentials_env names an unset variable fails here, clearly
            store = build_store(spec, parallelism=parallelism)
            if on_first_use and isinstance(store, ChecksOnFirstUse):
                store.check_on_first_use()
            elif isinstance(store, ChecksReachable):
                store.check_bucket()
        except StoreError as exc:
            raise UserError(str(exc)) from exc
        stores[name] = store
    try:
        discovered = discover_actors(desired, stores)
    except StoreUnusable as exc:
        raise UserError(str(exc)) from exc
    except StoreError as exc:
        raise UserError(f"could not list the actor directories: {exc}") from exc
    ws = Workspace(desired, stores, discovered=discovered)
    desired = ws.desired
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
                f"{where}mappings[{mapping.name}].from: local directory {printable(str(directory))} does not exist "
                f"(store {mapping.local_store!r}, root {local.root})"
            )
    return ws


def observe_and_plan(
    ws: Workspace,
    hasher: Hasher | None = None,
    *,
    rehash_all: bool = False,
    progress: Callable[[str, int], None] | None = None,
    targets: Sequence[str] = (),
) -> tuple[Observed, Plan]:
    """Observe and plan. Without a `hasher`, local md5s come from the hash cache (read all with `rehash_all`).

    `targets` (`--target`): only those parts of the specs are observed and planned. The caller runs the
    delete guards against `ws.desired`, the full specs, so an overlap with an untargeted mapping still counts.
    """
    desired = narrow(ws.desired, targets)
    kept = {a.actor_id for a in desired.actors}
    own = CachedHasher(rehash_all=rehash_all) if hasher is None else None
    try:
        observed = observe(
            desired,
            ws.observing,
            own or hasher or StreamingHasher(),
            progress=progress,
            # Only those `--target` kept: plan() must not add back an actor the narrowing left out.
            discovered=tuple(d for d in ws.discovered if d.actor_id in kept),
        )
    except StoreUnusable as exc:
        raise UserError(str(exc)) from exc
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
    return observed, make_plan(desired, observed)


def guarded_plan(
    ws: Workspace,
    limits: GuardLimits | None = None,
    *,
    targets: Sequence[str] = (),
    rehash_all: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> tuple[Observed, Plan]:
    """observe_and_plan, then the delete guards (default limits unless given) against the full specs."""
    observed, plan = observe_and_plan(ws, rehash_all=rehash_all, progress=progress, targets=targets)
    # ws.desired: the specs plus the actors discovered at the edge, all of them even under --target.
    return observed, guards.check(ws.desired, observed, plan, limits or GuardLimits())
