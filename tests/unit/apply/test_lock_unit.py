"""The apply lock against the in-memory store (same conditional-write rules as S3)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

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


class FakeClock:
    """Time that passes only when the test advances it or the code under test sleeps: no test waits on the wall.

    `wait` blocks the renewer until the test moves time past its deadline; `waits` counts the waits begun, so a
    test knows a renewal round finished when the renewer is parked again.
    """

    TICK = 0.001  # a set Event cannot notify our condition: a waiter looks at it this often (real seconds)

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._cond = threading.Condition()
        self._due: list[tuple[float, Callable[[], None]]] = []
        self.waits = 0
        self.slept = 0.0

    def time(self) -> float:
        with self._cond:
            return self._now

    def monotonic(self) -> float:
        return self.time()

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.advance(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        with self._cond:
            deadline = self._now + seconds
            self.waits += 1
            self._cond.notify_all()
            while not event.is_set() and self._now < deadline:
                self._cond.wait(self.TICK)
            return event.is_set()

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        self._due.append((when, fn))

    def advance(self, seconds: float) -> None:
        with self._cond:
            self._now += seconds
            due = [fn for when, fn in self._due if when <= self._now]
            self._due = [(when, fn) for when, fn in self._due if when > self._now]
            self._cond.notify_all()
        for fn in due:
            fn()

    def parked(self, waits: int) -> None:
        """Until the code under test has begun its `waits`-th wait (the bound is only against a hang)."""
        with self._cond:
            assert self._cond.wait_for(lambda: self.waits >= waits, timeout=10), "the renewer never waited again"


def test_second_lock_fails_fast_naming_the_holder() -> None:
    store, clock = MemoryStore("s3"), FakeClock()
    first = StoreLock(store, KEY, label='bucket "b"', clock=clock)
    first.acquire()
    try:
        body = json.loads(store.get(KEY))
        assert set(body) >= {"id", "host", "pid", "started", "lease_seconds", "expires"}
        assert body["id"] == first.id
        second = StoreLock(store, KEY, label='bucket "b"', clock=clock)
        with pytest.raises(LockHeld) as caught:
            second.acquire()
        assert clock.slept == 0  # no --lock-timeout: no polling either
        assert caught.value.holder is not None and caught.value.holder.id == first.id
        assert f'bucket "b" (s3:.pixel/lock) is locked by apply {first.id}' in str(caught.value)
        assert f"pixel force-unlock {first.id}" in str(caught.value)
    finally:
        first.release()
    assert store.keys() == []


def test_lock_timeout_waits_for_the_holder_to_release() -> None:
    store, clock = MemoryStore("s3"), FakeClock()
    first = StoreLock(store, KEY, clock=clock)
    first.acquire()
    clock.call_at(clock.time() + 3, first.release)
    second = StoreLock(store, KEY, poll_seconds=2, clock=clock)
    second.acquire(timeout=60)
    assert clock.slept == 4  # polled at 0 and 2 (held), at 4 it was free
    current = read_lock(store, KEY)
    assert current is not None and current[0].id == second.id
    second.release()


def test_lock_timeout_runs_out() -> None:
    store, clock = MemoryStore("s3"), FakeClock()
    with StoreLock(store, KEY, clock=clock):
        with pytest.raises(LockHeld, match=r"waited 5s"):
            StoreLock(store, KEY, poll_seconds=2, clock=clock).acquire(timeout=5)
        assert clock.slept == 5  # 2 + 2 + the last 1 up to the deadline, not a poll past it


def test_lease_is_renewed_and_a_removed_lock_is_noticed() -> None:
    store, clock = MemoryStore("s3"), FakeClock()
    lock = StoreLock(store, KEY, lease_seconds=60, clock=clock)
    lock.acquire()
    clock.parked(1)
    first = read_lock(store, KEY)
    assert first is not None
    clock.advance(19)  # the renewer wakes every lease/3 = 20s
    assert read_lock(store, KEY) == first
    clock.advance(1)
    clock.parked(2)
    renewed = read_lock(store, KEY)
    assert renewed is not None and renewed[1] != first[1]  # rewritten: new ETag
    assert renewed[0].renewed == first[0].renewed + 20 and renewed[0].expires == first[0].expires + 20
    force_unlock(store, KEY, lock.id)
    clock.advance(20)
    assert lock.lost.wait(10), "the renewer must notice the lock was taken away"
    lock.release()  # must not raise, and must not delete someone else's lock
    assert store.keys() == []


def test_a_holder_that_stopped_renewing_is_refused_then_reported_expired() -> None:
    store, clock = MemoryStore("s3"), FakeClock()
    dead = StoreLock(store, KEY, lease_seconds=60, clock=clock)
    dead.acquire()
    dead._stop.set()  # stop renewing, as a killed process would
    clock.advance(30)
    with pytest.raises(LockHeld, match="Wait for it") as live:
        StoreLock(store, KEY, clock=clock).acquire()
    assert "expired" not in str(live.value)
    clock.advance(100)
    with pytest.raises(LockHeld, match=r"lease expired at .* \(70s ago\).*probably killed") as expired:
        StoreLock(store, KEY, clock=clock).acquire()
    assert f"pixel force-unlock {dead.id}" in str(expired.value)  # it is not taken over: a person frees it
    assert read_lock(store, KEY) is not None and read_lock(store, KEY)[0].id == dead.id  # type: ignore[index]


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
