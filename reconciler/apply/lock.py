"""One apply at a time per bucket: a lock object created with If-None-Match: *.

The lock is an ordinary object (default key `.pixel/lock`) whose JSON body
names its holder: a random id, host, pid, start time and a lease. The server's
conditional write makes creation atomic: of two applies racing, exactly one
gets 200 and the other 412. While apply runs, a background thread rewrites
the object with If-Match on its own ETag, pushing the lease forward; if that
write is refused, someone removed or replaced the lock (force-unlock), and
`lost` is set so the executor starts nothing new. The lock is deleted with
If-Match at the end, on error and on Ctrl-C.

A holder killed with -9 stops renewing, so its lease runs out. pixel does not
take over an expired lock by itself (clock skew between machines would make
that unsafe); the message says the holder is probably dead and how to free it
with `pixel force-unlock ID`.

The lock talks to the Store protocol only, so it works on any store, and tells
time through an injected Clock (the system clock unless a test passes a fake).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from reconciler.errors import UserError
from reconciler.keys import printable
from reconciler.logs import get_logger
from reconciler.stores.base import ObjectChanged, Store, StoreError
from reconciler.stores.retry import outermost

DEFAULT_LEASE_SECONDS = 60.0
POLL_SECONDS = 2.0


class Clock(Protocol):
    """The lock's time: what the lock object records, its deadlines and its pauses (tests pass a fake)."""

    def time(self) -> float:
        """Seconds since the epoch: the lock object's started and renewed times, compared across machines."""
        ...

    def monotonic(self) -> float:
        """For --lock-timeout's deadline, which a wall-clock step must not move."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Until `event` is set (True) or `seconds` have passed (False)."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(seconds)


SYSTEM_CLOCK = SystemClock()


class LockHeld(UserError):
    """Another apply holds the lock (and --lock-timeout, if any, ran out)."""

    def __init__(self, message: str, holder: LockInfo | None) -> None:
        super().__init__(message)
        self.holder = holder


class LockError(UserError):
    """The lock could not be read, written or removed."""


@dataclasses.dataclass(frozen=True, slots=True)
class LockInfo:
    id: str
    host: str
    pid: int
    started: float  # seconds since the epoch
    renewed: float
    lease_seconds: float
    renewals: int = 0  # also makes every renewal's body (and so its ETag) differ from the last

    @property
    def expires(self) -> float:
        return self.renewed + self.lease_seconds

    def to_json(self) -> bytes:
        body = {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "started": _iso(self.started),
            "renewed": _iso(self.renewed),
            "lease_seconds": self.lease_seconds,
            "expires": _iso(self.expires),
            "renewals": self.renewals,
            "tool": "pixel apply",
        }
        return (json.dumps(body, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LockInfo:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            id=str(data["id"]),
            host=str(data.get("host", "?")),
            pid=int(data.get("pid", 0)),
            started=_parse_iso(str(data["started"])),
            renewed=_parse_iso(str(data.get("renewed", data["started"]))),
            lease_seconds=float(data.get("lease_seconds", DEFAULT_LEASE_SECONDS)),
            renewals=int(data.get("renewals", 0)),
        )

    def describe(self) -> str:
        # The lock object is anyone's to write: what it says is shown escaped.
        return printable(f"apply {self.id} (host {self.host}, pid {self.pid}) since {_iso(self.started)}")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def parse_duration(text: str) -> float:
    """'90', '90s', '5m', '1h' -> seconds. Raises ValueError with the accepted forms."""
    text = text.strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        value = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ValueError(f"{text!r} is not a duration: use seconds or a number with s, m or h (e.g. 30s, 5m)")
    return value


def _write(store: Store, key: str, body: bytes, *, if_match: str | None = None, if_absent: bool = False) -> str:
    # No executor around the lock: a throttled write is retried by the same one retry layer.
    entry = outermost(
        lambda: store.write(
            key,
            lambda: contextlib.nullcontext(io.BytesIO(body)),
            size=len(body),
            md5=hashlib.md5(body).hexdigest(),
            if_match=if_match,
            if_absent=if_absent,
        )
    )
    return entry.etag or ""


def read_lock(store: Store, key: str) -> tuple[LockInfo, str] | None:
    """The current holder and the lock object's ETag, or None when unlocked."""
    entry = store.stat(key)
    if entry is None:
        return None
    try:
        with store.open(key) as body:
            raw = body.read()
    except StoreError as exc:
        if store.stat(key) is None:  # released between the stat and the read
            return None
        raise LockError(f"cannot read the lock {store.name}:{key}: {exc}") from exc
    try:
        return LockInfo.from_json(raw), entry.etag or ""
    except (ValueError, KeyError, TypeError) as exc:
        raise LockError(
            f"the lock object {store.name}:{key} is not a pixel lock ({exc}); "
            "remove it by hand if nothing else uses that key"
        ) from exc


def held_message(where: str, holder: LockInfo, now: float) -> str:
    base = f"{where} is locked by {holder.describe()}"
    if now > holder.expires:
        ago = int(now - holder.expires)
        return (
            f"{base}; its lease expired at {_iso(holder.expires)} ({ago}s ago), so the holder stopped renewing it "
            f"and was probably killed. pixel does not take over a lock by itself: if no apply is running, "
            f"free it with `pixel force-unlock {holder.id}`"
        )
    return (
        f"{base}, lease renewed until {_iso(holder.expires)}. Wait for it to finish (or pass --lock-timeout 5m "
        f"to wait here); if that apply is dead, free the lock with `pixel force-unlock {holder.id}`"
    )


class StoreLock:
    """The apply lock on one store. Use as a context manager, or acquire()/release()."""

    def __init__(
        self,
        store: Store,
        key: str,
        *,
        label: str = "",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_seconds: float = POLL_SECONDS,
        clock: Clock = SYSTEM_CLOCK,
        lock_id: str | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.label = label or f"store {store.name!r}"
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.id = lock_id or uuid.uuid4().hex
        self.lost = threading.Event()
        self._etag: str | None = None
        self._renewals = 0
        self._started = 0.0
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.log = get_logger("pixel.lock")

    def _info(self, now: float) -> LockInfo:
        return LockInfo(
            self.id, socket.gethostname(), os.getpid(), self._started, now, self.lease_seconds, self._renewals
        )

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock, waiting up to `timeout` seconds for a holder to release it."""
        deadline = self.clock.monotonic() + timeout
        self._started = self.clock.time()
        while True:
            try:
                etag = _write(self.store, self.key, self._info(self.clock.time()).to_json(), if_absent=True)
            except ObjectChanged:
                current = read_lock(self.store, self.key)
                if current is None:
                    continue  # released between our attempt and the read: try again at once
                holder = current[0]
                if self.clock.monotonic() >= deadline:
                    waited = f" (waited {timeout:.0f}s)" if timeout else ""
                    where = f"{self.label} ({self.store.name}:{self.key})"
                    raise LockHeld(held_message(where, holder, self.clock.time()) + waited, holder) from None
                self.log.info("waiting for the lock", lock=f"{self.store.name}:{self.key}", holder=holder.id)
                self.clock.sleep(min(self.poll_seconds, max(0.0, deadline - self.clock.monotonic())))
                continue
            except StoreError as exc:
                raise LockError(f"cannot create the lock {self.store.name}:{self.key}: {exc}") from exc
            with self._guard:
                self._etag = etag
            break
        self.log.info("lock acquired", lock=f"{self.store.name}:{self.key}", id=self.id)
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="pixel-lock-renew", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        interval = self.lease_seconds / 3
        while not self.clock.wait(self._stop, interval):
            try:
                self.renew()
            except ObjectChanged:
                self.lost.set()
                self.log.error(
                    "lock lost: the lock object was removed or replaced (force-unlock?); no new action will start",
                    lock=f"{self.store.name}:{self.key}",
                    id=self.id,
                )
                return
            except StoreError as exc:
                # A blip: the lease still has two thirds left; try again next round.
                self.log.warning("lock renewal failed, will retry", error=str(exc))

    def renew(self) -> None:
        with self._guard:
            if self._etag is None:
                return
            self._renewals += 1
            self._etag = _write(
                self.store, self.key, self._info(self.clock.time()).to_json(), if_match=self._etag
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._guard:
            etag, self._etag = self._etag, None
        if etag is None:
            return
        try:
            self.store.delete(self.key, if_match=etag)
        except ObjectChanged:
            self.log.warning("lock was no longer ours at release; left as it is", lock=f"{self.store.name}:{self.key}")
            return
        except StoreError as exc:
            self.log.error(
                "could not release the lock",
                lock=f"{self.store.name}:{self.key}",
                error=str(exc),
                hint=f"pixel force-unlock {self.id}",
            )
            return
        self.log.info("lock released", lock=f"{self.store.name}:{self.key}", id=self.id)

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def hold_all(locks: Sequence[StoreLock], timeout: float = 0.0) -> Iterator[threading.Event]:
    """Acquire every lock (in the given order, so two applies never deadlock); yield one event set if any is lost."""
    lost = threading.Event()
    taken: list[StoreLock] = []
    try:
        for lock in locks:
            lock.lost = lost
            lock.acquire(timeout)
            taken.append(lock)
        yield lost
    finally:
        for lock in reversed(taken):
            lock.release()


def force_unlock(store: Store, key: str, lock_id: str) -> LockInfo:
    """Remove the lock only when `lock_id` names its current holder."""
    current = read_lock(store, key)
    if current is None:
        raise LockError(f"{store.name}:{key} is not locked; nothing to do")
    holder, etag = current
    if holder.id != lock_id:
        raise LockError(
            f"{store.name}:{key} is held by {holder.describe()}, not by {lock_id}; nothing was removed"
        )
    try:
        store.delete(key, if_match=etag)
    except ObjectChanged as exc:
        raise LockError(f"{store.name}:{key} changed while it was being removed; run force-unlock again") from exc
    except StoreError as exc:
        raise LockError(f"cannot remove the lock {store.name}:{key}: {exc}") from exc
    return holder
