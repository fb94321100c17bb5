"""Actor manifests in the seed's format, rendered from the two sides of an actor's mapping.

Status per image: `rules.manifest_status` of the pair (synced, local_only,
s3_only, out_of_sync; an md5 not yet known on a side reads out_of_sync until the
plan's rehash learns it). `training_data_updated` is carried
over from the previous manifest while the entries are unchanged, so a
re-render of an unchanged actor is byte-identical.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.actor_layout import image_name, image_template
from reconciler.manifests.common import dumps, iso_from_ns, previous_document, s3_url, size_mb, timestamp_from_ns
from reconciler.model import ActorLayout, ActorSpec, Authority, Entry, MappingSpec, S3StoreSpec
from reconciler.rules import STATUSES, ManifestStatus, manifest_status

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """actor_2.jpg before actor_10.jpg."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(name) if part)


@dataclass(frozen=True, slots=True)
class ActorState:
    """Everything known about one actor's images: what the manifest and `pixel status` report."""

    entries: tuple[dict[str, Any], ...]
    orphans: tuple[Entry, ...] = ()  # reported: not adopted
    adopted: tuple[Entry, ...] = ()  # adopt_orphans: correctly named images outside training_data/, listed
    missing: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    counts: Mapping[ManifestStatus, int] = field(default_factory=dict)
    sizes: Mapping[ManifestStatus, int] = field(default_factory=dict)


def declared_names(layout: ActorLayout, actor: ActorSpec) -> list[str]:
    """The image names `count` declares: the image template with its index 0 .. count-1."""
    if actor.count is None:
        return []
    template = image_template(layout, actor.actor_name)
    return [template.replace("*", str(index), 1) for index in range(actor.count)]


def actor_state(
    layout: ActorLayout,
    actor: ActorSpec,
    mapping: MappingSpec,
    s3: S3StoreSpec,
    local: Mapping[str, Entry],
    remote: Mapping[str, Entry],
    strays: Iterable[Entry] = (),
) -> ActorState:
    entries = []
    counts = dict.fromkeys(STATUSES, 0)
    sizes = dict.fromkeys(STATUSES, 0)
    conflicts = []
    adopted, reported = _adoption(layout, actor, local, strays)
    found_at = {rel: e.key for rel, e in adopted.items()}
    local = {**local, **adopted}
    for rel in sorted(local.keys() | remote.keys(), key=natural_key):
        here, there = local.get(rel), remote.get(rel)
        status = manifest_status(here, there)
        shown = here if here is not None else there
        assert shown is not None
        mtime_ns = shown.mtime_ns or 0
        counts[status] += 1
        sizes[status] += shown.size
        if status is ManifestStatus.OUT_OF_SYNC and mapping.authority is Authority.NONE:
            conflicts.append(rel)
        entries.append(
            {
                "filename": rel.rsplit("/", 1)[-1],
                "local_path": found_at.get(rel) or mapping.local_key(rel),
                "s3_url": s3_url(s3, mapping.remote_key(rel)),
                "md5_hash": shown.md5,
                "size_bytes": shown.size,
                "size_mb": size_mb(shown.size),
                "modified_timestamp": timestamp_from_ns(mtime_ns),
                "modified_date": iso_from_ns(mtime_ns),
                "status": status,
            }
        )
    present = {rel.rsplit("/", 1)[-1] for rel in local.keys() | remote.keys()}
    missing = tuple(name for name in declared_names(layout, actor) if name not in present)
    orphans = tuple(sorted(reported, key=lambda e: natural_key(e.key)))
    listed = tuple(sorted(adopted.values(), key=lambda e: natural_key(e.key)))
    return ActorState(tuple(entries), orphans, listed, missing, tuple(conflicts), counts, sizes)


def _adoption(
    layout: ActorLayout, actor: ActorSpec, local: Mapping[str, Entry], strays: Iterable[Entry]
) -> tuple[dict[str, Entry], list[Entry]]:
    """(file name -> stray entry) adopted, and the strays reported. With `adopt_orphans`, a stray whose file name
    is one the layout expects is listed in the manifest where it was found, unless training_data/ (or an
    earlier stray, by name) already holds that name: one entry per name, never two files behind one."""
    if not layout.adopt_orphans:
        return {}, list(strays)
    pattern = image_name(layout, actor.actor_name)
    adopted: dict[str, Entry] = {}
    reported: list[Entry] = []
    for entry in sorted(strays, key=lambda e: natural_key(e.key)):
        name = entry.key.rsplit("/", 1)[-1]
        if pattern.fullmatch(name) and name not in local and name not in adopted:
            adopted[name] = entry
        else:
            reported.append(entry)
    return adopted, reported


def render_actor_manifest(state: ActorState, actor: ActorSpec, previous: bytes | None, now_ns: int | None) -> bytes:
    """The manifest's bytes.

    `training_data_updated`: kept from `previous` while the entries are unchanged; `now_ns` (the clock at
    apply; the planner passes None) when they changed since it; with no readable previous manifest, the
    newest entry's time, so regenerating a deleted manifest of unchanged files gives the same bytes.
    """
    entries = list(state.entries)
    old = previous_document(previous)
    newest = max((round(e["modified_timestamp"] * 1e9) for e in entries), default=0)
    if old is None:
        updated = iso_from_ns(newest)
    elif old.get("training_data") == entries and isinstance(old.get("training_data_updated"), str):
        updated = old["training_data_updated"]
    else:
        updated = iso_from_ns(now_ns if now_ns is not None else newest)
    document: dict[str, Any] = {
        "character_id": actor.actor_id,
        "character_name": actor.actor_name,
        "training_data": entries,
        "training_data_updated": updated,
        "statistics": {
            "training_images_count": len(entries),
            "training_data_size_mb": size_mb(sum(int(e["size_bytes"]) for e in entries)),
            "training_synced_count": state.counts.get(ManifestStatus.SYNCED, 0),
            "training_local_only_count": state.counts.get(ManifestStatus.LOCAL_ONLY, 0),
            "training_s3_only_count": state.counts.get(ManifestStatus.S3_ONLY, 0),
            "training_out_of_sync_count": state.counts.get(ManifestStatus.OUT_OF_SYNC, 0),
        },
    }
    if state.orphans or state.missing or state.conflicts:
        # Only when something is unaccounted for, so a clean actor's manifest is exactly the seed's shape.
        document["accountability"] = {
            "orphans": [e.key for e in state.orphans],
            "missing": list(state.missing),
            "conflicts": list(state.conflicts),
        }
    return dumps(document)
