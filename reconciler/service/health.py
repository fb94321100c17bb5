"""Which S3 stores the service can reach: each probe bounded by a deadline, re-probed with backoff.

`pixel serve` keeps answering from disk while a bucket is unreachable or its
credentials are missing (degraded mode), and goes live again by itself once a
probe succeeds. Probes are driven by requests, not by a thread of their own:
a request that finds the next probe due runs it (one at a time; the others
answer from what is known meanwhile). The clock is injected, so tests move
time past the backoff instead of sleeping through it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from reconciler.logs import get_logger
from reconciler.manifests.common import iso_ms_from_ns
from reconciler.model import S3StoreSpec
from reconciler.stores.base import ChecksReachable, StoreError
from reconciler.stores.factory import build_store

# A probe that has not answered by then counts as down: a bucket that hangs must not hang the request that asked.
PROBE_DEADLINE = 5.0
# Seconds until the next probe after the 1st, 2nd, ... failed one in a row; the last one repeats.
BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)

Probe = Callable[[S3StoreSpec], None]
_log = get_logger("pixel.serve")


def check_store(spec: S3StoreSpec) -> None:
    """Build the store as the CLI does and HEAD its bucket; raises when it cannot be used (unreachable, missing,
    denied, credentials absent)."""
    store = build_store(spec, parallelism=1)
    if isinstance(store, ChecksReachable):
        store.check_bucket()


@dataclass(frozen=True, slots=True)
class Down:
    """A store the last probe could not use: since when (the first failed probe of this outage), and why."""

    since: float  # wall-clock seconds
    reason: str

    @property
    def since_iso(self) -> str:
        return iso_ms_from_ns(round(self.since * 1e9))


def _why(exc: BaseException) -> str:
    # A StoreError's message is pixel's own wording (names the store, never a credential); anything else
    # (a library's error) is named by its type as well.
    return str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"


class Health:
    def __init__(
        self,
        *,
        probe: Probe = check_store,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        deadline: float = PROBE_DEADLINE,
        backoff: Sequence[float] = BACKOFF,
    ) -> None:
        self._probe = probe
        self._clock = clock
        self._wall = wall
        self.deadline = deadline
        self._backoff = tuple(backoff)
        self._lock = threading.Lock()  # guards the fields below
        self._probing = threading.Lock()  # one probe at a time
        self._down: dict[str, Down] = {}
        self._failures = 0
        self._next = 0.0

    def down(self) -> dict[str, Down]:
        """The stores the last probe found unusable (empty: all answered)."""
        with self._lock:
            return dict(self._down)

    def due(self) -> bool:
        """Whether a store is down and its next probe is due (no I/O: cheap enough for every request)."""
        with self._lock:
            return bool(self._down) and self._clock() >= self._next

    def retry_in(self) -> float:
        with self._lock:
            return max(0.0, self._next - self._clock()) if self._down else 0.0

    def probe(self, specs: Sequence[S3StoreSpec], *, wait: bool = False) -> dict[str, Down] | None:
        """Probe every store now, all at once, each within the deadline; the stores down after it.

        None when another probe is running and not `wait`: the caller answers from `down()` rather than
        waiting for it. With `wait` (nothing known to be down yet) it waits for that probe, then probes.
        """
        if not self._probing.acquire(blocking=wait):
            return None
        try:
            failed = self._run(specs)
        finally:
            self._probing.release()
        with self._lock:
            now = self._wall()
            was = set(self._down)
            self._down = {
                name: Down(self._down[name].since if name in self._down else now, why) for name, why in failed.items()
            }
            for name in sorted(set(self._down) - was):
                _log.warning("S3 store unreachable: serving from disk until it answers", store=name,
                             reason=self._down[name].reason)
            for name in sorted(was - set(self._down)):
                _log.info("S3 store reachable again: answers are live", store=name)
            if self._down:
                self._failures += 1
                self._next = self._clock() + self._backoff[min(self._failures, len(self._backoff)) - 1]
            else:
                self._failures = 0
            return dict(self._down)

    def _run(self, specs: Sequence[S3StoreSpec]) -> Mapping[str, str]:
        """Why each store that failed its probe failed; a store that has not answered by the deadline is left
        to finish on its daemon thread, and counts as down."""
        answers: dict[str, str | None] = {}
        answered = threading.Condition()

        def one(spec: S3StoreSpec) -> None:
            why: str | None = None
            try:
                self._probe(spec)
            except Exception as exc:
                why = _why(exc)
            with answered:
                answers[spec.name] = why
                answered.notify_all()

        for spec in specs:
            threading.Thread(target=one, args=(spec,), name=f"pixel-probe-{spec.name}", daemon=True).start()
        with answered:
            answered.wait_for(lambda: len(answers) == len(specs), timeout=self.deadline)
            got = dict(answers)
        failed = {name: why for name, why in got.items() if why is not None}
        for spec in specs:
            if spec.name not in got:
                failed[spec.name] = f'store "{spec.name}": no answer within {self.deadline:g} s'
        return failed
