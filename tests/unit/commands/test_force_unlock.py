"""`force-unlock ID`: a stuck lock removed only when ID names its holder; a lock held removes nothing else."""

from __future__ import annotations

import pytest

from reconciler.apply.lock import LockError, LockHeld, LockInfo
from reconciler.apply.session import LockOptions
from reconciler.commands import EXIT_OK
from reconciler.commands.apply import apply
from reconciler.commands.force_unlock import unlock
from tests.unit.commands.conftest import World

STUCK = LockInfo(id="deadbeef", host="ci-runner-7", pid=4242, started=1.7e9, renewed=1.7e9, lease_seconds=1e9)


def test_a_held_lock_stops_apply_until_its_id_removes_it(world: World) -> None:
    world.lake.put(".pixel/lock", STUCK.to_json())
    world.local("a.json", b"{}")
    with pytest.raises(LockHeld):
        apply(world.specs, auto_approve=True, parallelism=2, lock=LockOptions(timeout=0))
    assert world.lake.keys() == [".pixel/lock"]

    with pytest.raises(LockError, match="no lock with id cafe"):
        unlock(world.specs, "cafe")
    assert world.lake.keys() == [".pixel/lock"]

    assert unlock(world.specs, "deadbeef") == EXIT_OK
    out, _ = world.output()
    assert 'Lock deadbeef on bucket "pixel-data"' in out and "host ci-runner-7, pid 4242" in out
    assert world.lake.keys() == []
    assert apply(world.specs, auto_approve=True, parallelism=2, lock=LockOptions(timeout=0)) == EXIT_OK
    assert world.lake.keys() == ["datasets/raw/a.json"]


def test_an_unlocked_bucket_or_an_unknown_store_is_an_error(world: World) -> None:
    with pytest.raises(LockError, match=r"no bucket of the specs .* is locked"):
        unlock(world.specs, "deadbeef")
    with pytest.raises(LockError, match="store 'disk' is not an S3 store used by the specs"):
        unlock(world.specs, "deadbeef", store="disk")
