"""An actor's exclusion record: images taken out of its manifest while S3 keeps them (seed 004's delete "from the
manifest" without "and S3").

The manifest is rendered from the stores, so an image still in S3 would be listed again by the next render, and
downloaded again by a pull. The record is pixel's own file (`actor_layout.exclusions_ref`, beside the manifests
under `.pixel/`), never a field of the seed's manifest document. Each excluded file name keeps the S3 object's
md5, ETag and size at exclusion time: the same object stays out of the manifest, the plan and the counts; a
different object under that name is not hidden silently (the planner reports it, `ExcludedImage.changed`).

Pure: bytes in, bytes out; observation (`observe.world`) and the manifest writer call `split`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.manifests.common import dumps
from reconciler.model import ActorExclusions, Entry, ExcludedImage, MappingObservation

FORMAT = "pixel-actor-exclusions"
VERSION = 1
KEPT_IN_S3 = "excluded from the manifest (kept in S3)"


@dataclass(frozen=True, slots=True)
class Record:
    """One excluded file name, as written when it was excluded."""

    md5: str | None
    etag: str | None
    size: int | None
    excluded_at: str


class BadRecord(ValueError):
    """The file is not an exclusion record pixel wrote: what it excludes is unknown."""


def _optional(value: object, kind: type, where: str) -> Any:
    if value is not None and not isinstance(value, kind):
        raise BadRecord(f"{where}: expected {kind.__name__} or null, got {type(value).__name__}")
    return value


def parse(content: bytes | None) -> dict[str, Record]:
    """File name -> record; {} when there is no file. Raises BadRecord for anything pixel did not write."""
    if content is None:
        return {}
    try:
        document = json.loads(content)
    except ValueError as exc:
        raise BadRecord(f"not JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("version") != VERSION:
        raise BadRecord(f'not a {FORMAT} version {VERSION} document (its "format" and "version")')
    images = document.get("excluded")
    if not isinstance(images, dict):
        raise BadRecord('"excluded" is not an object of file names')
    records: dict[str, Record] = {}
    for name, item in images.items():
        where = f"excluded.{name}"
        if not isinstance(item, dict) or not isinstance(item.get("excluded_at"), str):
            raise BadRecord(f"{where}: expected an object with md5, etag, size and excluded_at")
        size = _optional(item.get("size"), int, f"{where}.size")
        records[name] = Record(
            md5=_optional(item.get("md5"), str, f"{where}.md5"),
            etag=_optional(item.get("etag"), str, f"{where}.etag"),
            size=size,
            excluded_at=item["excluded_at"],
        )
    return records


def render(actor_id: str, records: Mapping[str, Record]) -> bytes:
    """The record's bytes (sorted JSON, like every generated file)."""
    return dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "actor_id": actor_id,
            "excluded": {name: dataclasses.asdict(record) for name, record in sorted(records.items())},
        }
    )


def record_of(remote: Entry, excluded_at: str) -> Record:
    """What an exclusion keeps of the S3 object it leaves alone: enough to know the same object later."""
    return Record(md5=remote.md5, etag=remote.etag, size=remote.size, excluded_at=excluded_at)


def split(obs: MappingObservation, content: bytes | None) -> tuple[MappingObservation, ActorExclusions]:
    """The actor's observation without its excluded file names (on both sides), and what was taken out.

    An unreadable record leaves the observation whole and says why: its callers then act on nothing of the
    actor rather than guess what it excluded.
    """
    try:
        records = parse(content)
    except BadRecord as exc:
        return obs, ActorExclusions(problem=str(exc))
    if not records:
        return obs, ActorExclusions()
    images = tuple(
        ExcludedImage(
            rel=name,
            md5=record.md5,
            etag=record.etag,
            size=record.size,
            excluded_at=record.excluded_at,
            remote=obs.remote.get(name),
            local=obs.local.get(name),
        )
        for name, record in sorted(records.items())
    )
    kept = dataclasses.replace(
        obs,
        local={rel: e for rel, e in obs.local.items() if rel not in records},
        remote={rel: e for rel, e in obs.remote.items() if rel not in records},
    )
    return kept, ActorExclusions(images=images)


def finding_message(image: ExcludedImage, actor_id: str) -> str | None:
    """What the plan must say about an excluded image beyond the exclusion itself; None when nothing changed."""
    if image.changed:
        assert image.remote is not None
        was = image.md5 or f"ETag {image.etag}"
        now = image.remote.md5 or f"ETag {image.remote.etag}"
        return (
            f"{KEPT_IN_S3} for actor {actor_id} as md5 {was}, but the object in S3 is now md5 {now}: its new bytes "
            "are not listed; re-include it to list them, or delete it with delete_from_s3=true"
        )
    if image.local is not None:
        return (
            f"{KEPT_IN_S3} for actor {actor_id}, but a local copy is there: it is neither listed nor synced; "
            "re-include the image to list it, or remove the local file"
        )
    return None
