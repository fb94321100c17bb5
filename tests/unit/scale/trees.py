"""Random worlds for the streaming planner's tests: specs, both sides of each mapping, gaps and problems.

Built as an `Observed` directly (not through stores) so that every case the first pass distinguishes
can occur: unknown md5s on either side, keys a server renamed ('\\' vs '/'), a key that is also a
directory, names that sort before '/', a name that is not UTF-8, gaps, overlapping mappings.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from reconciler.model import (
    Authority,
    Desired,
    Entry,
    Gap,
    LocalStoreSpec,
    MappingObservation,
    MappingSpec,
    Observed,
    Ownership,
    Problem,
    S3StoreSpec,
    TierSpec,
)
from reconciler.plan.guards import GuardLimits
from reconciler.scale.spill import Spill

KEYS = (
    "a", "a/b", "a/c", "a-b", "a!", "b", "b\\c", "b/c", "c/d/e", "c/d/f", "é", "z\udcff", "x/../y", "k.jsonl",
    ".pixel/tmp/q",
)  # fmt: skip
CONTENTS = tuple(hashlib.md5(str(i).encode()).hexdigest() for i in range(5))


@dataclass(frozen=True)
class World:
    desired: Desired
    observed: Observed
    limits: GuardLimits


def _entry(rel: str, content: int, *, remote: bool, known: bool) -> Entry:
    size = 10 + content
    md5 = CONTENTS[content] if known else None
    if remote:
        return Entry(rel, size, md5, 1_000 + content, md5 or f"{CONTENTS[content]}-2")
    return Entry(rel, size, md5, 2_000 + content, f"{size}-{content}-ino")


@st.composite
def side(draw: st.DrawFn, *, remote: bool) -> dict[str, Entry]:
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=9))
    out = {}
    for rel in keys:
        content = draw(st.integers(0, len(CONTENTS) - 1))
        known = draw(st.booleans()) if remote else draw(st.integers(0, 9)) > 0
        out[rel] = _entry(rel, content, remote=remote, known=known)
    return out


@st.composite
def moved_around(draw: st.DrawFn, local: dict[str, Entry]) -> dict[str, Entry]:
    """The local tree's contents under other keys: renames, swaps and rotations for the moves pass."""
    keys = draw(st.permutations(sorted(local)))
    others = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=3))
    out = {}
    for new, old in zip([*keys, *others], [*local, *local], strict=False):
        content = CONTENTS.index(local[old].md5) if local[old].md5 else 0
        out[new] = _entry(new, content, remote=True, known=draw(st.integers(0, 5)) > 0)
    return out


GAPS = st.lists(st.builds(Gap, st.sampled_from(["", "a", "c/d", "b"]), st.just("listing failed")), max_size=1).map(
    tuple
)


@st.composite
def mapping(draw: st.DrawFn, name: str, local_path: str, prefix: str) -> MappingSpec:
    return MappingSpec(
        name,
        "disk",
        local_path,
        "s3",
        prefix,
        exclude=draw(st.sampled_from([(), ("*.jsonl",)])),
        authority=draw(st.sampled_from([Authority.LOCAL, Authority.LOCAL, Authority.S3, Authority.NONE])),
        prune=draw(st.integers(0, 3)) > 0,
        protect=draw(st.integers(0, 5)) == 0,
        release_local=draw(st.integers(0, 3)) == 0,
        prune_local=draw(st.booleans()),
        keep_local=draw(st.sampled_from([(), ("a/*",)])),
    )


@st.composite
def worlds(draw: st.DrawFn) -> World:
    specs = [draw(mapping("m", "src", "pre/"))]
    if draw(st.booleans()):
        specs.append(draw(mapping("n", "other", "more/")))
    if draw(st.booleans()):
        # Covers part of m's prefix: its not pruning (or protect) refuses m's deletes there.
        specs.append(draw(mapping("o", "over", "pre/c/")))
    observations = {}
    for spec in specs:
        if draw(st.integers(0, 6)) == 0:
            continue  # a mapping not observed (narrowed away)
        local = draw(side(remote=False))
        remote = draw(st.one_of(side(remote=True), moved_around(local)))
        observations[spec.name] = MappingObservation(local, remote, draw(GAPS), draw(GAPS))
    problems = tuple(
        Problem(f"disk:{key}", "permission denied", "disk", key)
        for key in draw(st.lists(st.sampled_from(["src/a", "over"]), unique=True, max_size=1))
    )
    # A tier over part of the prefixes: the tier guards refuse a delete in a shared or protected one.
    tiers = draw(
        st.sampled_from(
            [
                (),
                (TierSpec("kept", "s3", "pre/c/", ownership=Ownership.SHARED),),
                (TierSpec("safe", "s3", "more/", protect=True), TierSpec("raw", "s3", "pre/")),
            ]
        )
    )
    desired = Desired(
        stores={"disk": LocalStoreSpec("disk", "/nowhere"), "s3": S3StoreSpec("s3", "bucket")},
        mappings=tuple(specs),
        spec_digest="digest",
        tiers=tiers,
    )
    limits = GuardLimits(
        max_delete=draw(st.sampled_from([0, 2, 100])),
        allow_mass_delete=draw(st.booleans()),
        strict=draw(st.booleans()),
        mass_min_count=2,
    )
    return World(desired, Observed(mappings=observations, problems=problems), limits)


def spilled(observed: Observed, spill: Spill) -> Observed:
    """`observed` with each side moved into the spill, as the streaming observer leaves it."""

    def moved(entries: Mapping[str, Entry], name: str) -> Mapping[str, Entry]:
        out = spill.side(name)
        out.add_all(entries.values())
        return out

    return dataclasses.replace(
        observed,
        mappings={
            name: MappingObservation(
                moved(obs.local, f"{name}:local"), moved(obs.remote, f"{name}:s3"), obs.local_gaps, obs.remote_gaps
            )
            for name, obs in observed.mappings.items()
        },
    )


def cache_dir(tmp: Path) -> Path:
    return tmp / "cache"
