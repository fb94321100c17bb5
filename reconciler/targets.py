"""`--target NAME`: the specs narrowed to one part, like Terraform's -target. Pure.

A target is a mapping name, `actors/ID` (`actors/42` and `actors/0042` are the
same actor; `actors/NAME` is its mapping's name), a dataset name, or
`final_dataset`. The narrowed Desired keeps only those mappings, actors and
datasets, so only they are observed and planned. It keeps every store and
tier: the tier rules (shared, protected) still judge its deletes. The files
that describe more than the target (the dataset registry, the inventory) are
left out: rendering them from a part would drop the rest, so the next full
apply rewrites them. The caller still runs the delete guards against the full
specs and still takes every bucket's lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from reconciler.actor_layout import MAPPING_PREFIX
from reconciler.errors import UserError
from reconciler.model import ActorSpec, Desired

FINAL_DATASET = "final_dataset"


class UnknownTarget(UserError):
    """A --target that names no part of the specs."""


def same_actor_id(wanted: str, actor_id: str) -> bool:
    """`42` and `0042` address actor 0042: ids compare as numbers when both are numbers."""
    if wanted.isdigit() and actor_id.isdigit():
        return int(wanted) == int(actor_id)
    return wanted == actor_id


def find_actor(desired: Desired, wanted: str) -> ActorSpec | None:
    return next((a for a in desired.actors if same_actor_id(wanted, a.actor_id)), None)


def _known(desired: Desired) -> str:
    mappings = [m.name for m in desired.mappings if not m.name.startswith(MAPPING_PREFIX)]
    parts = [
        f"mappings: {', '.join(mappings) or 'none'}",
        f"actors: {', '.join(MAPPING_PREFIX + a.actor_id for a in desired.actors) or 'none'}",
        f"datasets: {', '.join(d.name for d in desired.datasets) or 'none'}",
    ]
    return "; ".join(parts)


def _resolve(desired: Desired, name: str) -> tuple[set[str], set[str]]:
    """(mapping names, dataset names) that `name` selects; UnknownTarget when it selects nothing."""
    if name == FINAL_DATASET:
        if desired.final is None:
            raise UnknownTarget(f"--target {FINAL_DATASET}: no final dataset is declared in the specs")
        return set(), set()  # the section itself: kept by narrow(), with no mapping or dataset beside it
    mappings = {m.name for m in desired.mappings if m.name == name}
    datasets = {d.name for d in desired.datasets if d.name == name}
    if name.startswith(MAPPING_PREFIX):
        actor = find_actor(desired, name[len(MAPPING_PREFIX) :])
        if actor is not None:
            mappings.add(actor.mapping)
    if not mappings and not datasets:
        raise UnknownTarget(
            f"--target {name!r} names no part of the specs: expected a mapping name, actors/ID, a dataset name "
            f"or {FINAL_DATASET} ({_known(desired)})"
        )
    return mappings, datasets


def narrow(desired: Desired, names: Iterable[str]) -> Desired:
    """`desired` cut down to the parts `names` select; unchanged when `names` is empty."""
    wanted = tuple(dict.fromkeys(names))
    if not wanted:
        return desired
    mappings: set[str] = set()
    datasets: set[str] = set()
    for name in wanted:
        more_mappings, more_datasets = _resolve(desired, name)
        mappings |= more_mappings
        datasets |= more_datasets
    return dataclasses.replace(
        desired,
        mappings=tuple(m for m in desired.mappings if m.name in mappings),
        actors=tuple(a for a in desired.actors if a.mapping in mappings),
        datasets=tuple(d for d in desired.datasets if d.name in datasets),
        registry=None,
        inventory=None,
        final=desired.final if FINAL_DATASET in wanted else None,
        targets=wanted,
    )
