"""The law of guard flags at `pixel apply FILE`: the limits enforced are never looser than the ones the plan
was reviewed under, a given limit that would loosen them is refused, and one that tightens them is what
is enforced."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.commands.apply_saved import tightened
from reconciler.errors import UserError
from reconciler.plan.guards import GuardLimits

COUNTS = [f.name for f in dataclasses.fields(GuardLimits) if f.name.startswith("max_")]
limits = st.builds(
    GuardLimits,
    **{name: st.integers(0, 1000) for name in COUNTS},
    allow_mass_delete=st.booleans(),
    strict=st.booleans(),
)


@given(saved=limits, asked=limits, names=st.sets(st.sampled_from(COUNTS)))
def test_the_enforced_limits_are_never_looser_than_the_saved_ones(
    saved: GuardLimits, asked: GuardLimits, names: set[str]
) -> None:
    loosens = any(getattr(asked, n) > getattr(saved, n) for n in names) or (
        asked.allow_mass_delete and not saved.allow_mass_delete
    )
    if loosens:
        with pytest.raises(UserError, match="would loosen"):
            tightened(saved, asked, names)
        return
    enforced = tightened(saved, asked, names)
    for name in COUNTS:
        expected = getattr(asked, name) if name in names else getattr(saved, name)
        assert getattr(enforced, name) == expected <= getattr(saved, name)
    assert enforced.allow_mass_delete == saved.allow_mass_delete
    assert enforced.strict == (saved.strict or asked.strict)
    assert (enforced.mass_fraction, enforced.mass_min_count) == (saved.mass_fraction, saved.mass_min_count)


def test_a_count_left_at_its_default_is_not_taken_as_given() -> None:
    saved = GuardLimits(max_delete=500)
    assert tightened(saved, GuardLimits(), set()).max_delete == 500
