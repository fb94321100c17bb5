"""The apply lock against the in-memory store (same conditional-write rules as S3)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from reconciler.apply.lock import (
    LockError,
    LockHeld,
    LockInfo,
    StoreLock,
    force_unlock,
    held_message,
    hold_all,
    parse_duration,
    read_lock,
)
from reconciler.model import Desired, LocalStoreSpec, MappingSpec, S3StoreSpec
from reconciler.observe import StreamingHasher, observe
from reconciler.plan import plan
from reconciler.stores.memory import MemoryStore

KEY = ".pixel/lock"


def test_second_lock_fails_fast_naming_the_holder() -> None:
    store = MemoryStore("s3")
    first = StoreLock(store, KEY, label='bucket "b"')
    first.acquire()
    try:
        body = json.loads(store.get(KEY))
        assert set(body) >= {"id", "host", "pid", "started", "lease_seconds", "expires"}
        assert body["id"] == first.id
        second = StoreLock(store, KEY, label='bucket "b"')
        start = time.monotonic()
        with pytest.raises(LockHeld) as caught:
            second.acquire()
        assert time.monotonic() - start < 1
        assert caught.value.holder is not None and caught.value.holder.id == first.id
        assert f'bucket "b" (s3:.pixel/lock) is locked by apply {first.id}' in str(caught.value)
        assert f"pixel force-unlock {first.id}" in str(caught.value)
    finally:
        first.release()
    assert store.keys() == []


def test_lock_timeout_waits_for_the_holder_to_release() -> None:
    store = MemoryStore("s3")
    first = StoreLock(store, KEY)
    first.acquire()
    threading.Timer(0.3, first.release).start()
    second = StoreLock(store, KEY, poll_seconds=0.05)
    second.acquire(timeout=5)
    assert read_lock(store, KEY) is not None
    assert read_lock(store, KEY)[0].id == second.id  # type: ignore[index]
    second.release()


def test_lock_timeout_runs_out() -> None:
    store = MemoryStore("s3")
    with StoreLock(store, KEY):
        start = time.monotonic()
        with pytest.raises(LockHeld, match=r"waited 0s"):
            StoreLock(store, KEY, poll_seconds=0.05).acquire(timeout=0.3)
        assert 0.25 < time.monotonic() - start < 2


def test_lease_is_renewed_and_a_removed_lock_is_noticed() -> None:
    store = MemoryStore("s3")
    lock = StoreLock(store, KEY, lease_seconds=0.15)
    lock.acquire()
    first = read_lock(store, KEY)
    assert first is not None
    time.sleep(0.25)
    renewed = read_lock(store, KEY)
    assert renewed is not None and renewed[1] != first[1]  # rewritten: new ETag
    force_unlock(store, KEY, lock.id)
    assert lock.lost.wait(2), "the renewer must notice the lock was taken away"
    lock.release()  # must not raise, and must not delete someone else's lock
    assert store.keys() == []


def test_force_unlock_needs_the_right_id() -> None:
    store = MemoryStore("s3")
    lock = StoreLock(store, KEY)
    lock.acquire()
    lock._stop.set()  # stop renewing, as a killed process would
    with pytest.raises(LockError, match=f"held by apply {lock.id}.*not by wrong; nothing was removed"):
        force_unlock(store, KEY, "wrong")
    assert read_lock(store, KEY) is not None
    holder = force_unlock(store, KEY, lock.id)
    assert holder.id == lock.id
    assert read_lock(store, KEY) is None
    with pytest.raises(LockError, match="not locked"):
        force_unlock(store, KEY, lock.id)


def test_expired_lease_message_says_the_holder_is_probably_dead() -> None:
    info = LockInfo("abc", "ci-7", 42, started=1000.0, renewed=1000.0, lease_seconds=60)
    message = held_message("bucket", info, now=1100.0)
    assert "lease expired at 1970-01-01T00:17:40Z (40s ago)" in message
    assert "probably killed" in message and "pixel force-unlock abc" in message
    assert "Wait for it" in held_message("bucket", info, now=1010.0)


def test_hold_all_releases_what_it_took_when_a_later_lock_is_held() -> None:
    a, b = MemoryStore("a"), MemoryStore("b")
    blocker = StoreLock(b, KEY)
    blocker.acquire()
    with pytest.raises(LockHeld), hold_all([StoreLock(a, KEY), StoreLock(b, KEY)]):
        pass
    assert a.keys() == []  # the first lock was released again
    blocker.release()


def test_a_foreign_object_at_the_lock_key_is_reported() -> None:
    store = MemoryStore("s3")
    store.put(KEY, b"not json")
    with pytest.raises(LockError, match="is not a pixel lock"):
        StoreLock(store, KEY).acquire()


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("90", 90), ("30s", 30), ("5m", 300), ("1.5h", 5400)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_the_lock_object_is_not_data_to_a_whole_bucket_mapping() -> None:
    desired = Desired(
        stores={"disk": LocalStoreSpec("disk", "/x"), "s3": S3StoreSpec("s3", "b", lock_key=".locks/pixel")},
        mappings=(MappingSpec("all", "disk", "", "s3", "", prune=True),),
    )
    spec = desired.stores["s3"]
    assert isinstance(spec, S3StoreSpec)
    disk, s3 = MemoryStore("disk"), MemoryStore("s3", spec)  # lists as S3Store does: pixel's own space left out
    disk.put("a", b"1")
    with StoreLock(s3, ".locks/pixel"):
        observed = observe(desired, {"disk": disk, "s3": s3}, StreamingHasher())
    assert set(observed.mappings["all"].remote) == set()
    assert [a.kind.value for a in plan(desired, observed).actions] == ["upload"]
