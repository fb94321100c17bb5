"""Actors -> one mapping each. Pure: discovery hands in the directory names it listed."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

from reconciler.globs import escape
from reconciler.model import (
    Action,
    ActionKind,
    ActorLayout,
    ActorSpec,
    Authority,
    Desired,
    DiscoveredActor,
    MappingSpec,
    ObjectRef,
)

MAPPING_PREFIX = "actors/"


def mapping_name(actor_name: str) -> str:
    return f"{MAPPING_PREFIX}{actor_name}"


def actor_dir(layout: ActorLayout, actor_name: str) -> str:
    """The actor's own directory in the local store: orphans are looked for below it."""
    return f"{layout.local_root}/{actor_name}" if layout.local_root else actor_name


INDEX = "{index}"
LEGACY_SCOPE = "legacy"  # the plan scope of legacy-file deletes
LEGACY_RESPONSE = "response.json"  # seed 004: "NO LONGER USED ... should be deleted"


def legacy_response_key(layout: ActorLayout, actor_name: str) -> str:
    """The local key of the actor's legacy training_data/response.json, migrated to the manifest long ago."""
    return f"{actor_dir(layout, actor_name)}/training_data/{LEGACY_RESPONSE}"


def legacy_deletable(desired: Desired) -> frozenset[ObjectRef]:
    """The legacy response.json files the specs let pixel delete (`legacy_response_json: delete`): nothing else
    may be deleted under that scope, whatever a plan (or an edited plan file) says."""
    layout = desired.actor_layout
    if layout is None or layout.legacy_response_json != "delete":
        return frozenset()
    return frozenset(ObjectRef(layout.local_store, legacy_response_key(layout, a.actor_name)) for a in desired.actors)


def legacy_deletes(desired: Desired, actions: Sequence[Action]) -> set[tuple[str, str]]:
    """(store, key) of the deletes in `actions` that the legacy scope plans and the specs allow: the delete
    guards' ownership rules do not cover them (no mapping selects response.json), the flag does."""
    allowed = legacy_deletable(desired)
    return {
        (a.target.store, a.target.key)
        for a in actions
        if a.kind is ActionKind.DELETE and a.mapping == LEGACY_SCOPE and a.target in allowed
    }


def image_template(layout: ActorLayout, actor_name: str) -> str:
    """The image file name with `*` where the index goes (`{index}`, or the pattern's first `*`)."""
    return layout.images.replace("{actor_name}", actor_name).replace(INDEX, "*")


def image_name(layout: ActorLayout, actor_name: str) -> re.Pattern[str]:
    """A file name the layout expects for the actor: the template with a decimal index (seed 004's naming)."""
    head, star, tail = image_template(layout, actor_name).partition("*")
    return re.compile(re.escape(head) + (r"\d+" if star else "") + re.escape(tail))


def image_selection(layout: ActorLayout, actor_name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(include, exclude) globs selecting exactly the expected images: the template with a decimal index,
    directly in training_data/ (the leading "/" anchors the glob there). Anything else is an orphan."""
    head, star, tail = layout.images.replace(INDEX, "*").partition("*")
    # Escaped after the split: a directory name is not a pattern (`0042_a[1]` must not become a
    # character class), and an escaped `*` in a name must not be taken for the index.
    head, tail = (part.replace("{actor_name}", escape(actor_name)) for part in (head, tail))
    include = f"/{head}{star}{tail}"
    if not star:
        return (include,), ()
    # Globs have no "digits only": exclude an empty index and any index with a non-digit in it.
    return (include,), (f"/{head}{tail}", f"/{head}*[!0-9]*{tail}")


def manifest_ref(layout: ActorLayout, actor_id: str) -> ObjectRef:
    name = f"{actor_id}_manifest.json"
    return ObjectRef(layout.manifest_store, f"{layout.manifest_dir}/{name}" if layout.manifest_dir else name)


EXCLUSIONS_DIR = ".pixel"  # beside the manifests: pixel's own files, never a manifest (`{id}_manifest.json`)


def exclusions_ref(layout: ActorLayout, actor_id: str) -> ObjectRef:
    """Where the actor's exclusion record lives (`manifests.exclusions`): pixel's own state, not the seed's format."""
    name = f"{EXCLUSIONS_DIR}/{actor_id}_excluded.json"
    return ObjectRef(layout.manifest_store, f"{layout.manifest_dir}/{name}" if layout.manifest_dir else name)


def build_actor(
    layout: ActorLayout,
    actor_id: str,
    actor_name: str,
    *,
    authority: Authority | None = None,
    count: int | None = None,
) -> tuple[ActorSpec, MappingSpec]:
    include, exclude = image_selection(layout, actor_name)
    mapping = MappingSpec(
        name=mapping_name(actor_name),
        local_store=layout.local_store,
        local_path=f"{actor_dir(layout, actor_name)}/training_data",
        s3_store=layout.s3_store,
        s3_prefix=f"{layout.s3_prefix}{actor_name}/",
        include=include,
        exclude=exclude,
        authority=authority or layout.authority,
        prune=layout.prune,
        source_file=layout.source_file,
    )
    actor = ActorSpec(
        actor_id=actor_id,
        actor_name=actor_name,
        mapping=mapping.name,
        manifest=manifest_ref(layout, actor_id),
        count=count,
    )
    return actor, mapping


def discover(layout: ActorLayout, names: Iterable[str]) -> list[tuple[str, str]]:
    """(actor_id, actor_name) for every directory name the layout's pattern matches, sorted by name."""
    if layout.discover is None:
        return []
    pattern = re.compile(layout.discover)
    found: dict[str, str] = {}
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        groups = match.groupdict()
        found[name] = groups.get("id") or name
    return sorted(((actor_id, name) for name, actor_id in found.items()), key=lambda pair: pair[1])


def with_discovered(desired: Desired, discovered: Iterable[DiscoveredActor]) -> Desired:
    """`desired` plus one actor and mapping per discovered actor the specs do not already list.

    Idempotent: an actor already present (by id or name), or whose mapping name is taken, is left as it is.
    """
    layout = desired.actor_layout
    if layout is None:
        return desired
    listed_ids = {a.actor_id for a in desired.actors}
    listed_names = {a.actor_name for a in desired.actors}
    taken = {m.name for m in desired.mappings}
    actors: list[ActorSpec] = []
    mappings: list[MappingSpec] = []
    for found in discovered:
        if found.actor_id in listed_ids or found.actor_name in listed_names:
            continue  # listed in the specs: the listing's settings win
        actor, mapping = build_actor(layout, found.actor_id, found.actor_name)
        if mapping.name in taken:
            continue
        listed_ids.add(found.actor_id)
        actors.append(actor)
        mappings.append(mapping)
    if not actors:
        return desired
    return dataclasses.replace(
        desired,
        mappings=(*desired.mappings, *mappings),
        actors=tuple(sorted((*desired.actors, *actors), key=lambda a: a.actor_name)),
    )
