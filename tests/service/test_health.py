"""The service's S3 health checks on their own: backoff on an injected clock, deadlines, one probe at a time."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from reconciler.model import S3StoreSpec
from reconciler.service.health import BACKOFF, Health
from reconciler.stores.base import TransientStoreError

A = S3StoreSpec(name="a", bucket="a")
B = S3StoreSpec(name="b", bucket="b")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0  # whole and half seconds from here: every sum exact in binary floating point

    def __call__(self) -> float:
        return self.now


@given(st.lists(st.booleans(), min_size=1, max_size=30))
def test_probes_back_off_while_down_and_forget_the_outage_once_up(outcomes: list[bool]) -> None:
    """Law: after n failed probes in a row the next is due BACKOFF[min(n, len) - 1] later; `since` is the first
    failure of the outage; one success clears it all."""
    clock, wall = Clock(), Clock()
    answers = iter(outcomes)

    def probe(spec: S3StoreSpec) -> None:
        if not next(answers):
            raise TransientStoreError(f"{spec.name}: connection refused")

    health = Health(probe=probe, clock=clock, wall=wall)
    failures, since = 0, None
    for up in outcomes:
        wall.now += 7
        down = health.probe([A])
        assert down is not None
        if up:
            failures, since = 0, None
            assert down == {} and not health.due() and health.retry_in() == 0
            continue
        failures += 1
        since = wall.now if since is None else since
        assert down["a"].since == since and "connection refused" in down["a"].reason
        wait = BACKOFF[min(failures, len(BACKOFF)) - 1]
        probed_at = clock.now
        assert health.retry_in() == wait
        clock.now = probed_at + wait / 2
        assert not health.due()
        clock.now = probed_at + wait
        assert health.due()


def test_a_probe_that_does_not_answer_by_the_deadline_counts_as_down() -> None:
    hung, release = threading.Event(), threading.Event()

    def probe(spec: S3StoreSpec) -> None:
        if spec.name == "b":
            hung.set()
            release.wait(60)

    health = Health(probe=probe, clock=Clock(), deadline=0.05)
    try:
        down = health.probe([A, B])
    finally:
        release.set()
    assert hung.is_set()
    assert down is not None and set(down) == {"b"}
    assert down["b"].reason == 'store "b": no answer within 0.05 s'


def test_one_probe_at_a_time_the_others_answer_from_what_is_known() -> None:
    inside, release = threading.Event(), threading.Event()

    def probe(spec: S3StoreSpec) -> None:
        inside.set()
        release.wait(60)
        raise TransientStoreError("down")

    health = Health(probe=probe, clock=Clock())
    first = threading.Thread(target=health.probe, args=([A],))
    first.start()
    try:
        assert inside.wait(60)
        assert health.probe([A]) is None  # not waiting: the caller keeps what it knows
    finally:
        release.set()
        first.join(60)
    assert set(health.down()) == {"a"}
