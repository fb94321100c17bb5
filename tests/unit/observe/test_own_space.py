"""pixel's own space seen from below any base key: exactly the keys the store spec reserves."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler.model import PIXEL_PREFIX, LocalStoreSpec, S3StoreSpec
from reconciler.rules import own_space

_SEGMENTS = st.sampled_from([".pixel", "locks", "lock", "data", "a", ".pixe", "pixel"])
_KEYS = st.lists(_SEGMENTS, min_size=1, max_size=4).map("/".join)


@given(
    lock=st.sampled_from([".pixel/lock", "locks/pixel.lock", "lock", ".pixel/locks/x"]),
    base=st.one_of(st.just(""), _KEYS.map(lambda k: k + "/"), _KEYS),
    key=_KEYS,
)
def test_a_relative_key_is_own_exactly_when_the_s3_spec_reserves_its_full_key(lock: str, base: str, key: str) -> None:
    spec = S3StoreSpec("s3", "bucket", lock_key=lock)
    full = base + key
    assert own_space(spec, base).holds(key) == spec.reserves(full)


@given(base=st.one_of(st.just(""), _KEYS.map(lambda k: k + "/")), key=_KEYS)
def test_a_local_stores_own_space_is_pixel_at_its_root(base: str, key: str) -> None:
    full = base + key
    assert own_space(LocalStoreSpec("disk", "/x"), base).holds(key) == full.startswith(PIXEL_PREFIX)


def test_a_base_far_from_pixels_space_holds_none_of_it() -> None:
    assert not own_space(S3StoreSpec("s3", "bucket"), "datasets/")
    assert not own_space(LocalStoreSpec("disk", "/x"), "set/")
