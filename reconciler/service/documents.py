"""Seed 004's API documents built from an actor manifest (the seed's other format). Pure: dicts in, models out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.manifests.common import iso_ms_from_ns
from reconciler.rules import ManifestStatus
from reconciler.service.models import ActorSummary, TrainingData, TrainingImage

_INDEX = re.compile(r"_(\d+)\.[^./]+$")


class BadManifest(ValueError):
    """A manifest on disk that is not in the seed's format (edited by hand); the next apply rewrites it."""


def image_index(filename: str, position: int) -> int:
    """The number in `{actor_name}_{index}.jpg`; the position in the manifest for a name without one."""
    match = _INDEX.search(filename)
    return int(match.group(1)) if match else position


def training_data(actor_id: str, manifest: Mapping[str, Any], local_root: Path) -> TrainingData:
    """The API document of one actor; `local_root` is the local store's root the manifest's paths are under."""
    try:
        entries = manifest["training_data"]
        stats = manifest["statistics"]
        images = [
            TrainingImage(
                index=image_index(str(e["filename"]), position),
                filename=e["filename"],
                s3_url=e["s3_url"],
                local_exists=e["status"] != ManifestStatus.S3_ONLY,
                local_path=str(local_root / e["local_path"]),
                md5_hash=e["md5_hash"],
                size_mb=e["size_mb"],
                modified_date=iso_ms_from_ns(round(float(e["modified_timestamp"]) * 1e9)),
                status=e["status"],
            )
            for position, e in enumerate(entries)
        ]
        return TrainingData(
            actor_id=int(actor_id),
            actor_name=manifest["character_name"],
            training_images=images,
            total_count=stats["training_images_count"],
            synced_count=stats["training_synced_count"],
            local_only_count=stats["training_local_only_count"],
            s3_only_count=stats["training_s3_only_count"],
            out_of_sync_count=stats["training_out_of_sync_count"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadManifest(f"not in the actor manifest format ({type(exc).__name__}: {exc})") from exc


def actor_summary(actor_id: str, actor_name: str, document: TrainingData | None) -> ActorSummary:
    counts = document or TrainingData(
        actor_id=int(actor_id),
        actor_name=actor_name,
        training_images=[],
        total_count=0,
        synced_count=0,
        local_only_count=0,
        s3_only_count=0,
        out_of_sync_count=0,
    )
    return ActorSummary(
        actor_id=int(actor_id),
        actor_name=actor_name,
        manifest=document is not None,
        training_data_url=f"/api/actors/{actor_id}/training-data",
        total_count=counts.total_count,
        synced_count=counts.synced_count,
        local_only_count=counts.local_only_count,
        s3_only_count=counts.s3_only_count,
        out_of_sync_count=counts.out_of_sync_count,
    )
