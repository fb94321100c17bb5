"""`apply` hashes local files into the cache while its lock is being taken, and observes only once it is held.

The lock's PUT here waits until the warm-up has read every file, so what each side did is known without a
clock: every file read before the lock, none by the plan, the bucket listed only after the lock.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from reconciler.apply.lock import LockHeld, StoreLock
from reconciler.apply.session import LockOptions
from reconciler.commands import EXIT_OK
from reconciler.commands.apply import apply
from reconciler.model import Entry
from reconciler.observe import hashcache, warmup
from reconciler.observe.hashing import CHUNK
from tests.unit.commands.conftest import World
from tests.waiting import wait_for

NOW = LockOptions(timeout=0)
LOCK_KEY = ".pixel/lock"


def warming() -> bool:
    return any(t.name.startswith("pixel-warmup") for t in threading.enumerate())


def hashed_counts(stderr: str) -> tuple[int, int]:
    found = re.search(r"local files hashed\s.*?from_cache=(\d+).*?read=(\d+)", stderr)
    assert found is not None, stderr
    return int(found[2]), int(found[1])


@pytest.fixture
def seen(world: World, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What happened, in order: `read` (a local file hashed), `lock` (its PUT), `list` (the bucket listed)."""
    events: list[str] = []
    real_read = hashcache._md5_of_fd

    def read(fd: int, size_hint: int, chunk: int = CHUNK) -> tuple[str, int]:
        events.append("read")
        return real_read(fd, size_hint, chunk)

    real_write, real_list = world.lake.write, world.lake.list

    def write(key: str, source: Any, **kwargs: Any) -> Entry:
        if key == LOCK_KEY and not events.count("lock"):
            wait_for(lambda: not warming(), "the warm-up to read every file")
            events.append("lock")
        return real_write(key, source, **kwargs)

    def listed(prefix: str) -> Any:
        events.append("list")
        return real_list(prefix)

    monkeypatch.setattr(hashcache, "_md5_of_fd", read)
    monkeypatch.setattr(world.lake, "write", write)
    monkeypatch.setattr(world.lake, "list", listed)
    # Files written just now are too fresh for the cache to keep (the racy-git rule): here, they are old.
    monkeypatch.setattr(hashcache, "racy", lambda *args, **kwargs: False)
    return events


def test_files_are_hashed_before_the_lock_and_the_bucket_listed_only_after_it(world: World, seen: list[str]) -> None:
    for i in range(30):
        world.local(f"d{i % 3}/f{i}.json", b"{}" * (i + 1))
    world.local("skipped.txt", b"not the mapping's: never read")
    assert apply(world.specs, auto_approve=True, parallelism=2, lock=NOW) == EXIT_OK
    _, err = world.output()
    assert seen.index("lock") == 30 and seen.count("read") == 30  # all read while the lock was taken, none after
    assert "list" not in seen[: seen.index("lock")]  # the bucket observed under the lock only
    assert hashed_counts(err) == (30, 0)  # read by this run, none served by an earlier one
    assert len(world.lake.keys()) == 30
    seen.clear()
    assert apply(world.specs, auto_approve=True, parallelism=2, lock=NOW) == EXIT_OK
    assert "read" not in seen and hashed_counts(world.output()[1]) == (0, 30)


def test_a_file_changed_after_the_warm_up_is_read_again_by_the_plan(world: World, seen: list[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    world.local("a.json", b'{"v": 1}')
    world.local("b.json", b'{"v": 2}')
    real_write = world.lake.write

    def edited_while_locking(key: str, source: Any, **kwargs: Any) -> Entry:
        if key == LOCK_KEY and not seen.count("lock"):
            wait_for(lambda: not warming(), "the warm-up to read every file")
            world.local("a.json", b'{"v": 100}')  # after its md5 was cached: a new ctime, a new identity
        return real_write(key, source, **kwargs)

    monkeypatch.setattr(world.lake, "write", edited_while_locking)
    assert apply(world.specs, auto_approve=True, parallelism=2, lock=NOW) == EXIT_OK
    assert world.lake.get("datasets/raw/a.json") == b'{"v": 100}'
    assert seen.count("read") == 3  # a.json twice: the cached md5 was of bytes it no longer holds


def test_a_lock_held_elsewhere_stops_the_warm_up_and_touches_nothing(world: World) -> None:
    for i in range(20):
        world.local(f"f{i}.json", b"[]")
    other = StoreLock(world.lake, LOCK_KEY)
    other.acquire()
    try:
        with pytest.raises(LockHeld):
            apply(world.specs, auto_approve=True, parallelism=2, lock=NOW)
        assert not warming()  # joined before the error was raised: nothing of this apply runs on
        assert world.lake.keys() == [LOCK_KEY]
    finally:
        other.release()


def test_a_warm_up_that_breaks_is_said_once_and_the_plan_hashes_what_it_left(
    world: World, seen: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world.local("a.json", b"{}")

    def broken(entries: object) -> object:
        raise RuntimeError("a bug in the warm-up")

    monkeypatch.setattr(warmup, "hash_batches", broken)
    assert apply(world.specs, auto_approve=True, parallelism=2, lock=NOW) == EXIT_OK
    _, err = world.output()
    assert "hashing while the lock was taken stopped" in err and "a bug in the warm-up" in err
    assert "Traceback" not in err  # a log line (JSON under --log-format json), not a thread's dying words
    assert world.lake.keys() == ["datasets/raw/a.json"]
    assert seen == ["lock", "read", "list"] or seen == ["lock", "list", "read"]  # the plan read it, beside the listing
