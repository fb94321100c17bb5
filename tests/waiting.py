"""Waiting on a condition in tests: checked again and again, never assumed true after a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def pause(self) -> None: ...


class _Real:
    """The machine's clock. `pause` is the interval between two checks: a passing run never depends on its length,
    only a broken one meets the bound."""

    POLL = 0.02

    def monotonic(self) -> float:
        return time.monotonic()

    def pause(self) -> None:
        time.sleep(self.POLL)


REAL: Clock = _Real()


def wait_for(condition: Callable[[], object], what: str = "the condition", timeout: float = 60,
             clock: Clock = REAL) -> None:
    """Return once `condition()` is truthy; fail naming `what` if it is not within `timeout` seconds of `clock`.
    The timeout is a bound for a broken run, not a wait a passing run depends on."""
    deadline = clock.monotonic() + timeout
    while not condition():
        assert clock.monotonic() < deadline, f"still not {what} after {timeout:.0f} s"
        clock.pause()
