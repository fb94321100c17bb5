"""tests/waiting.wait_for on an injected clock: how often it checks and when it gives up, with no real time."""

from __future__ import annotations

import pytest

from tests.waiting import wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.pauses = 0

    def monotonic(self) -> float:
        return self.now

    def pause(self) -> None:
        self.pauses += 1
        self.now += 1.0


def test_it_returns_as_soon_as_the_condition_holds() -> None:
    clock, calls = FakeClock(), [0]

    def third_call() -> bool:
        calls[0] += 1
        return calls[0] >= 3

    wait_for(third_call, clock=clock)
    assert (calls[0], clock.pauses) == (3, 2)


def test_it_fails_naming_what_once_the_bound_has_passed_on_the_clock() -> None:
    clock = FakeClock()
    with pytest.raises(AssertionError, match="still not the lock released after 5 s"):
        wait_for(lambda: False, "the lock released", timeout=5, clock=clock)
    assert clock.pauses == 5  # checked at 100..104, given up at 105: the bound is the clock's, not the machine's
