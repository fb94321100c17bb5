"""`pixel force-unlock ID`: remove a stuck apply lock, only when ID names its holder."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.apply.lock import LockError, force_unlock, read_lock
from reconciler.apply.session import managed_s3_stores
from reconciler.commands import EXIT_OK
from reconciler.commands.common import load
from reconciler.model import S3StoreSpec
from reconciler.workflow import open_stores


def unlock(specs: Path, lock_id: str, *, store: str | None = None) -> int:
    desired = load(specs)
    names = managed_s3_stores(desired)
    if store is not None:
        if store not in names:
            raise LockError(f"store {store!r} is not an S3 store used by the specs in {specs} (those are: "
                            f"{', '.join(names) or 'none'})")
        names = [store]
    ws = open_stores(desired, parallelism=1)
    held_by_others: list[str] = []
    for name in names:
        spec = desired.stores[name]
        assert isinstance(spec, S3StoreSpec)
        current = read_lock(ws.stores[name], spec.lock_key)
        if current is None:
            continue
        holder, _ = current
        if holder.id != lock_id:
            held_by_others.append(f'bucket "{spec.bucket}" is held by {holder.describe()}')
            continue
        force_unlock(ws.stores[name], spec.lock_key, lock_id)
        click.echo(
            f'Lock {lock_id} on bucket "{spec.bucket}" (store {name!r}, key {spec.lock_key}) removed; '
            f"it was held by host {holder.host}, pid {holder.pid}."
        )
        return EXIT_OK
    if held_by_others:
        raise LockError(f"no lock with id {lock_id}; nothing was removed: " + "; ".join(held_by_others))
    raise LockError(f"no lock with id {lock_id}: no bucket of the specs in {specs} is locked; nothing to do")
