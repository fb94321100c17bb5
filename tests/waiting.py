"""Waiting on a condition in tests: checked again and again, never assumed true after a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], what: str = "the condition", timeout: float = 60) -> None:
    """Return once `condition()` is truthy; fail naming `what` if it is not within `timeout` seconds. The timeout
    is a bound for a broken run, not a wait a passing run depends on."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {timeout:.0f} s"
        time.sleep(0.02)  # the poll interval between checks
