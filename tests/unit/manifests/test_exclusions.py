"""The actor exclusion record (seed 004's delete "from the manifest" with S3 kept), on in-memory stores.

Laws: the record reads back as written; whatever images are excluded, under any authority and pruning, apply
never touches an excluded object (no download, no delete, no upload over it), the manifest never lists it, and
the plan after the apply is empty.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.manifests.exclusions import BadRecord, Record, parse, record_of, render
from tests.unit.manifests.world import World, build, jpeg

NAME = "0007_asian_25_female"
S3 = f"system_actors/training_data/{NAME}"
LOCAL = f"data/actors/{NAME}/training_data"
RECORD = "data/actor_manifests/.pixel/0007_excluded.json"

records = st.dictionaries(
    st.from_regex(r"[a-z0-9_]{1,12}\.jpg", fullmatch=True),
    st.builds(
        Record,
        md5=st.none() | st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
        etag=st.none() | st.text(min_size=1, max_size=40),
        size=st.none() | st.integers(min_value=0, max_value=2**40),
        excluded_at=st.text(max_size=30),
    ),
    max_size=5,
)


@given(records)
def test_the_record_reads_back_as_written(excluded: dict[str, Record]) -> None:
    assert parse(render("0007", excluded)) == excluded


def test_a_record_pixel_did_not_write_is_refused_not_read_as_empty() -> None:
    for bad in (b"{ half", b"[]", b'{"format": "other", "version": 1, "excluded": {}}'):
        try:
            parse(bad)
        except BadRecord:
            continue
        raise AssertionError(f"{bad!r} was read as an exclusion record")
    assert parse(None) == {}


def _world(tmp: Path, authority: str, prune: bool) -> World:
    world = build(tmp)
    spec = world.spec_dir / "world.yaml"
    text = spec.read_text().replace("ownership: shared", "ownership: exclusive")
    text = text.replace("  authority: local\n", f"  authority: {authority}\n" + ("  prune: true\n" if prune else ""), 1)
    spec.write_text(text)
    for index in range(4):  # 0007: four images in S3; 0 and 1 also local (from build), 2 and 3 S3 only
        world.assets.put(f"{S3}/{NAME}_{index}.jpg", jpeg(7 + index) if index < 2 else jpeg(70 + index))
    return world


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    excluded=st.sets(st.integers(min_value=0, max_value=3)),
    mode=st.sampled_from([("local", False), ("local", True), ("s3", False), ("s3", True)]),
)
def test_apply_never_touches_an_excluded_image_and_then_has_nothing_left_to_do(
    excluded: set[int], mode: tuple[str, bool]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = _world(Path(tmp), *mode)
        names = {f"{NAME}_{i}.jpg" for i in excluded}
        # As the DELETE with delete_from_s3=false leaves it: the record first, then no local copy.
        seen = {name: world.assets.stat(f"{S3}/{name}") for name in names}
        world.ws.put(RECORD, render("0007", {n: record_of(e, "then") for n, e in seen.items() if e is not None}))
        for name in names:
            if f"{LOCAL}/{name}" in set(world.ws):
                world.ws.delete(f"{LOCAL}/{name}")
        kept = {name: world.assets.get(f"{S3}/{name}") for name in names}

        plan, result, _ = world.apply()
        assert result.ok
        touched = json.dumps([(a.target.key, a.source.key if a.source else None) for a in plan.actions])
        assert not [name for name in names if name in touched]
        assert {name: world.assets.get(f"{S3}/{name}") for name in names} == kept
        assert not [name for name in names if f"{LOCAL}/{name}" in set(world.ws)]
        manifest = json.loads(world.ws.get("data/actor_manifests/0007_manifest.json"))
        listed = [e["filename"] for e in manifest["training_data"]]
        assert not names & set(listed)
        # Everything not excluded is still the actor's: listed (pulled or pushed, as its authority says).
        assert set(listed) >= {f"{NAME}_{i}.jpg" for i in range(2)} - names
        world.clock_ns += 10**12
        again, _, writer = world.apply()
        assert [a.id for a in again.actions] == [] and writer.written == []
        assert not [f for f in again.findings if any(name in f.key for name in names)]


def test_a_local_copy_left_under_an_excluded_name_is_reported_never_pushed_nor_an_orphan() -> None:
    """A crash between writing the record and removing the local copy (the record goes first) leaves the copy:
    the plan names it and acts on nothing, where without the record a push would upload it over the kept object."""
    with tempfile.TemporaryDirectory() as tmp:
        world = _world(Path(tmp), "local", False)
        name = f"{NAME}_1.jpg"
        kept = world.assets.get(f"{S3}/{name}")
        world.ws.put(f"{LOCAL}/{name}", jpeg(99))  # other bytes than S3's: a push would overwrite the object
        entry = world.assets.stat(f"{S3}/{name}")
        assert entry is not None
        world.ws.put(RECORD, render("0007", {name: record_of(entry, "then")}))
        plan, result, _ = world.apply()
        assert result.ok
        assert not [a for a in plan.actions if name in a.target.key]
        [finding] = [f for f in plan.findings if name in f.key]
        assert finding.kind.value == "unmanaged" and "a local copy is there" in finding.message
        assert world.assets.get(f"{S3}/{name}") == kept
        manifest = json.loads(world.ws.get("data/actor_manifests/0007_manifest.json"))
        assert name not in [e["filename"] for e in manifest["training_data"]]
        assert "accountability" not in manifest or not manifest["accountability"]["orphans"]
