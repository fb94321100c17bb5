"""Observation for the training-data sections: actors discovered, tiers listed, generated files read.

The planner is pure, so everything it compares against must arrive here: the
bytes of every manifest, registry and inventory file as it is on disk now, the
objects of every tier, the local files under an actor directory that its
mapping does not select (orphans), and the local files datasets are uploaded from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping

from reconciler.actor_layout import actor_dir, discover, exclusions_ref
from reconciler.manifests.exclusions import split
from reconciler.manifests.record_index import INDEXED_FORMATS, index_key
from reconciler.model import (
    ActorExclusions,
    Desired,
    DiscoveredActor,
    Entry,
    Gap,
    GeneratedFile,
    LocalStoreSpec,
    MappingObservation,
    ObjectRef,
    Observed,
    Problem,
    StoreSpec,
    TierSpec,
    inventoried_stores,
    tier_of,
)
from reconciler.observe.hashing import Hasher
from reconciler.observe.own_space import without_own
from reconciler.stores.base import Store


def _first_segments(entries: Iterable[Entry], base: str) -> set[str]:
    names = set()
    for entry in entries:
        rest = entry.key[len(base) :]
        if "/" in rest:
            names.add(rest.split("/", 1)[0])
    return names


def discover_actors(desired: Desired, stores: Mapping[str, Store]) -> tuple[DiscoveredActor, ...]:
    """One record per directory name the layout's pattern matches, on either side (sorted by name)."""
    layout = desired.actor_layout
    if layout is None or layout.discover is None:
        return ()
    local_base = f"{layout.local_root}/" if layout.local_root else ""
    names = _first_segments(stores[layout.local_store].list(local_base), local_base)
    names |= _first_segments(stores[layout.s3_store].list(layout.s3_prefix), layout.s3_prefix)
    return tuple(DiscoveredActor(actor_id, actor_name) for actor_id, actor_name in discover(layout, names))


def generated_refs(desired: Desired) -> list[ObjectRef]:
    refs = [a.manifest for a in desired.actors]
    refs += [ref for ref in (desired.registry, desired.inventory) if ref is not None]
    return refs


def read_generated(stores: Mapping[str, Store], ref: ObjectRef) -> GeneratedFile:
    store = stores[ref.store]
    entry = store.stat(ref.key)
    if entry is None:
        return GeneratedFile()
    with store.open(ref.key) as body:
        # Generated files are small (one entry per image or dataset); read whole to compare bytes.
        content = body.read()
    return GeneratedFile(entry=entry, content=content)


# Where a tier's listing is kept, given the tier's name and its entries as listed (full key -> Entry): a dict in
# memory, or (`--scale stream`) a table of the spill, so a tier over a huge bucket is never held in memory.
# Called with a listing's name ("tier NAME" or "bucket STORE": distinct prefixes, so the two never share a name).
TierKeeper = Callable[[str, Iterable[Entry]], Mapping[str, Entry]]


def in_memory(name: str, entries: Iterable[Entry]) -> dict[str, Entry]:
    return {entry.key: entry for entry in entries}


def listed(store: Store, prefix: str, spec: StoreSpec | None = None) -> Iterator[Entry]:
    """The objects under `prefix`, none of pixel's own (`spec`: the store's, which says where its own space is)."""
    return without_own(store.list(prefix), spec, prefix)


def list_tier(store: Store, prefix: str, spec: StoreSpec | None = None) -> dict[str, Entry]:
    """The tier's objects in memory, none of pixel's own."""
    return in_memory(prefix, listed(store, prefix, spec))


def strays(
    desired: Desired,
    stores: Mapping[str, Store],
    selected: Mapping[str, Iterable[str]],
    hasher: Hasher | None = None,
) -> dict[str, tuple[Entry, ...]]:
    """Per actor mapping: local files under the actor directory its mapping does not select."""
    layout = desired.actor_layout
    out: dict[str, tuple[Entry, ...]] = {}
    if layout is None:
        return out
    by_name = {m.name: m for m in desired.mappings}
    for actor in desired.actors:
        mapping = by_name[actor.mapping]
        base = mapping.local_base
        chosen = {base + rel for rel in selected.get(actor.mapping, ())}
        root = actor_dir(layout, actor.actor_name) + "/"
        found = tuple(e for e in stores[layout.local_store].list(root) if e.key not in chosen)
        if found and layout.adopt_orphans and hasher is not None:
            # An adopted orphan is listed with its md5, like every image of the manifest.
            store = stores[layout.local_store]
            found = tuple(dataclasses.replace(e, md5=hasher.md5(store, e)) for e in found)
        if found:
            out[actor.mapping] = found
    return out


def exclusions(
    desired: Desired, stores: Mapping[str, Store], mappings: Mapping[str, MappingObservation]
) -> tuple[dict[str, MappingObservation], dict[str, ActorExclusions], list[Problem]]:
    """Each actor's observation without the images its exclusion record keeps out of the manifest
    (`manifests.exclusions`), what was taken out, and a problem per record that cannot be read: that actor's
    sides become gaps, so nothing of it is acted on while what it excludes is unknown."""
    layout = desired.actor_layout
    kept = dict(mappings)
    excluded: dict[str, ActorExclusions] = {}
    problems: list[Problem] = []
    if layout is None:
        return kept, excluded, problems
    for actor in desired.actors:
        obs = mappings.get(actor.mapping)
        if obs is None:
            continue
        ref = exclusions_ref(layout, actor.actor_id)
        obs, found = split(obs, read_generated(stores, ref).content)
        if found.problem is not None:
            reason = f"the exclusion record {ref} cannot be read ({found.problem}); fix or delete it"
            problems.append(Problem(str(ref), reason, ref.store, ref.key))
            gap = (Gap("", reason),)
            obs = dataclasses.replace(obs, local_gaps=gap, remote_gaps=gap)
        if found.images or found.problem is not None:
            excluded[actor.mapping] = found
        kept[actor.mapping] = obs
    return kept, excluded, problems


def tiers_to_list(desired: Desired) -> list[TierSpec]:
    """Every tier; under `--target` only those its datasets lie in or come from (no inventory to list them for)."""
    if not desired.targets:
        return list(desired.tiers)
    refs = [ObjectRef(d.store, d.key) for d in desired.datasets]
    refs += [d.source for d in desired.datasets if d.source is not None]
    return [t for t in desired.tiers if any(tier_of([t], r.store, r.key) is not None for r in refs)]


def _record_indexes(
    desired: Desired, stores: Mapping[str, Store], tiers: Mapping[str, Mapping[str, Entry]]
) -> dict[ObjectRef, Entry]:
    """The record index of each registered dataset's object as listed now, where apply has written one: one
    HEAD a dataset (they lie in pixel's own space, which no listing keeps)."""
    found: dict[ObjectRef, Entry] = {}
    for dataset in desired.datasets:
        tier = tier_of(desired.tiers, dataset.store, dataset.key)
        entry = tiers.get(tier.name, {}).get(dataset.key) if tier is not None else None
        if entry is None or entry.md5 is None or dataset.format not in INDEXED_FORMATS:
            continue
        ref = ObjectRef(dataset.store, index_key(entry.md5, dataset.format))
        index = stores[ref.store].stat(ref.key)
        if index is not None:
            found[ref] = index
    return found


def observe_world(
    desired: Desired, stores: Mapping[str, Store], hasher: Hasher, observed: Observed, keep: TierKeeper = in_memory
) -> Observed:
    """`observed` completed with the tiers (each kept by `keep`), dataset sources, generated files and actor
    strays."""
    tiers = {
        tier.name: keep(f"tier {tier.name}", listed(stores[tier.store], tier.prefix, desired.stores.get(tier.store)))
        for tier in tiers_to_list(desired)
    }
    sources: dict[ObjectRef, Entry] = {}
    for dataset in desired.datasets:
        ref = dataset.source
        if ref is None or not isinstance(desired.stores.get(ref.store), LocalStoreSpec):
            continue
        entry = stores[ref.store].stat(ref.key)
        if entry is not None:
            sources[ref] = dataclasses.replace(entry, md5=hasher.md5(stores[ref.store], entry))
    generated = {ref: read_generated(stores, ref) for ref in generated_refs(desired)}
    record_indexes = _record_indexes(desired, stores, tiers)
    # The inventory lists whole buckets, not just the tiers (seed 000: "complete inventory of all S3 objects"):
    # kept like a tier, so under --scale stream a whole bucket is spilled rather than held.
    buckets: dict[str, Mapping[str, Entry]] = {}
    if desired.inventory is not None:
        buckets = {
            name: keep(f"bucket {name}", listed(stores[name], "", desired.stores.get(name)))
            for name in inventoried_stores(desired)
        }
    # The strays are judged before the exclusions: an excluded image's local copy is not an orphan.
    selected = {name: obs.local.keys() for name, obs in observed.mappings.items()}
    found_strays = strays(desired, stores, selected, hasher)
    mappings, excluded, problems = exclusions(desired, stores, observed.mappings)
    # Imported here: observe.final reads generated files with this module's helper.
    from reconciler.observe.final import observe_final

    return dataclasses.replace(
        observed,
        final=observe_final(desired, stores),
        tiers=tiers,
        sources=sources,
        generated=generated,
        strays=found_strays,
        buckets=buckets,
        mappings=mappings,
        excluded=excluded,
        problems=(*observed.problems, *problems),
        record_indexes=record_indexes,
    )
