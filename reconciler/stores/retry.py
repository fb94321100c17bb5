"""The one retry layer: transient store failures tried again with exponential backoff and full jitter.

The executor runs every action through `retrying`. Callers with no executor around them (observation,
the loader, verify, the lock, the service's reads) get the same layer where they meet the store: S3Store
sends its reads through `outermost`, which retries only when no layer further up this thread is already
doing so. An action's HEAD inside the executor is therefore sent once per executor attempt, never
attempts x attempts; below this layer the S3 paths retry nothing but one dropped connection.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler.stores.base import TransientStoreError

T = TypeVar("T")
# Told (attempt that failed, seconds until the next, its error) before each wait.
OnRetry = Callable[[int, float, TransientStoreError], None]

_retrying: ContextVar[bool] = ContextVar("pixel_retrying", default=False)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        # Full jitter: concurrent retries spread out instead of stampeding together.
        return self.rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


DEFAULT_POLICY = RetryPolicy()


def retrying(
    fn: Callable[[], T],
    policy: RetryPolicy = DEFAULT_POLICY,
    on_retry: OnRetry | None = None,
    *,
    first: TransientStoreError | None = None,
) -> T:
    """`fn()`, tried up to `policy.attempts` times while it raises TransientStoreError; the last one propagates.

    `first`: the failure of a first attempt made elsewhere (the executor's small-upload lane), which counts as
    attempt 1: the policy's backoff follows it, and `fn` is tried at most `attempts - 1` more times.
    """
    token = _retrying.set(True)
    try:
        attempt = 0
        failure = first
        while True:
            attempt += 1
            if failure is None:
                try:
                    return fn()
                except TransientStoreError as exc:
                    failure = exc
            if attempt >= policy.attempts:
                raise failure
            delay = policy.delay(attempt)
            if on_retry is not None:
                on_retry(attempt, delay, failure)
            policy.sleep(delay)
            failure = None
    finally:
        _retrying.reset(token)


def outermost(fn: Callable[[], T], policy: RetryPolicy = DEFAULT_POLICY) -> T:
    """`fn()` inside the one retry layer: retried here unless a `retrying` further up this thread already is."""
    return fn() if _retrying.get() else retrying(fn, policy)
