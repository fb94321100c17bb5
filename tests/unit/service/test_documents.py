"""The service's pure pieces: the API's timestamps, image indexes, ETag matching, the body and name checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.actor_layout import build_actor
from reconciler.dev.tinyjpeg import tiny_jpeg
from reconciler.manifests.common import iso_ms_from_ns
from reconciler.model import ActorLayout
from reconciler.service.documents import image_index
from reconciler.service.mutations import check_filename, check_jpeg, next_index
from reconciler.service.responses import etag_matches as _etag_matches
from reconciler.service.state import ServiceError, parse_actor_id


@given(st.integers(min_value=0, max_value=4_102_444_800 * 10**9))
def test_iso_ms_is_utc_milliseconds_and_z_and_truncates(ns: int) -> None:
    text = iso_ms_from_ns(ns)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert round(parsed.timestamp() * 1000) == ns // 1_000_000


def test_the_seed_example_time() -> None:
    assert iso_ms_from_ns(1_760_710_080 * 10**9) == "2025-10-17T14:08:00.000Z"


def test_index_is_the_number_in_the_name_else_the_position() -> None:
    assert image_index("0042_european_30_male_7.jpg", 0) == 7
    assert image_index("0042_european_30_male_10.jpg", 3) == 10
    assert image_index("0042_european_30_male_cover.jpg", 4) == 4


def test_etag_matching_follows_if_none_match() -> None:
    assert _etag_matches('"a"', '"a"') and _etag_matches('"b", "a"', '"a"') and _etag_matches('W/"a"', '"a"')
    assert _etag_matches("*", '"a"') and not _etag_matches('"b"', '"a"') and not _etag_matches("a", '"a"')


@pytest.mark.parametrize("raw", ["42", "0042", "7"])
def test_numeric_ids_pass(raw: str) -> None:
    assert parse_actor_id(raw) == raw


@pytest.mark.parametrize("raw", ["", "x", "4 2", "-1", "1e3", "٤٢", "1" * 13])
def test_other_ids_are_400(raw: str) -> None:
    with pytest.raises(ServiceError) as caught:
        parse_actor_id(raw)
    assert caught.value.status == 400


def test_jpeg_check() -> None:
    good = tiny_jpeg(1, "x")
    check_jpeg("a.jpg", good, len(good))
    for body, status in ((good, 413), (b"GIF89a" + good, 415), (good[:-2], 415), (b"", 415)):
        with pytest.raises(ServiceError) as caught:
            check_jpeg("a.jpg", body, len(good) - 1 if status == 413 else 10**6)
        assert caught.value.status == status


LAYOUT = ActorLayout("disk", "data/actors", "s3", "actors/", "disk", "manifests")
ACTOR, MAPPING = build_actor(LAYOUT, "0042", "0042_x_1_male")


@pytest.mark.parametrize("name", ["0042_x_1_male_0.jpg", "0042_x_1_male_12.jpg"])
def test_own_image_names_pass(name: str) -> None:
    check_filename(MAPPING, ACTOR, name)


@pytest.mark.parametrize(
    "name", ["../0042_x_1_male_0.jpg", "a/0042_x_1_male_0.jpg", "..", "0042_x_1_male_0.jpg\0", "x\\y.jpg",
             "0043_y_1_male_0.jpg", "0042_x_1_male_0.png", ".0042_x_1_male_0.jpg", ""],
)
def test_other_names_are_400(name: str) -> None:
    with pytest.raises(ServiceError) as caught:
        check_filename(MAPPING, ACTOR, name)
    assert caught.value.status == 400


def test_next_index_follows_the_highest_on_either_side() -> None:
    assert next_index([], ACTOR) == 0
    names = ["0042_x_1_male_0.jpg", "0042_x_1_male_9.jpg", "0042_x_1_male_10.jpg", "other_99.jpg"]
    assert next_index(names, ACTOR) == 11


def test_final_dataset_is_a_clear_404_when_the_specs_declare_none() -> None:
    import pytest

    from reconciler.model import Desired
    from reconciler.service.state import ServiceError, final_dataset_manifest
    from reconciler.workspace import Workspace

    with pytest.raises(ServiceError) as err:
        final_dataset_manifest(Workspace(Desired(stores={}, mappings=()), {}))
    assert (err.value.status, str(err.value)) == (404, "no final dataset is declared in the specs")
