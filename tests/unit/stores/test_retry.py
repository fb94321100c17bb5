"""The one retry layer: retries where no layer above already does, and only there."""

from __future__ import annotations

import pytest

from reconciler.stores.base import PermanentStoreError, TransientStoreError
from reconciler.stores.retry import RetryPolicy, outermost, retrying

POLICY = RetryPolicy(attempts=4, sleep=lambda s: None)


class Flaky:
    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.calls, self.failures = 0, failures
        self.error = error or TransientStoreError("503 SlowDown", code="SlowDown")

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def test_alone_the_store_boundary_retries_with_the_policy() -> None:
    flaky = Flaky(3)
    assert outermost(flaky, POLICY) == "ok" and flaky.calls == 4
    always = Flaky(99)
    with pytest.raises(TransientStoreError):
        outermost(always, POLICY)
    assert always.calls == POLICY.attempts


def test_under_a_retrying_caller_the_store_boundary_tries_once() -> None:
    inner = Flaky(99)
    outer_calls = []

    def action() -> str:
        outer_calls.append(1)
        return outermost(inner, POLICY)

    with pytest.raises(TransientStoreError):
        retrying(action, POLICY)
    assert len(outer_calls) == POLICY.attempts and inner.calls == POLICY.attempts  # not attempts x attempts
    assert outermost(Flaky(1), POLICY) == "ok"  # the layer is over: retried again


def test_permanent_errors_are_not_retried_and_retries_are_reported() -> None:
    denied = Flaky(99, PermanentStoreError("403", code="AccessDenied"))
    with pytest.raises(PermanentStoreError):
        retrying(denied, POLICY)
    assert denied.calls == 1
    told: list[int] = []
    retrying(Flaky(2), POLICY, lambda attempt, delay, exc: told.append(attempt))
    assert told == [1, 2]
