"""The JSON shapes the service answers with, as pydantic models (they are also the OpenAPI schema at /docs).

`TrainingData` is seed 004's `GET /api/actors/:actorId/training-data` field for
field: `actor_id` an integer, `modified_date` ISO-8601 with milliseconds and Z.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["synced", "local_only", "s3_only", "out_of_sync"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingImage(_Model):
    index: int = Field(description="the image's number: 7 for 0042_european_30_male_7.jpg")
    filename: str
    s3_url: str
    local_exists: bool
    local_path: str = Field(description="absolute path of the local copy (where it is, or would be)")
    md5_hash: str | None = Field(description="hex md5; null while S3 knows no md5 for an S3-only image")
    size_mb: float
    modified_date: str = Field(examples=["2025-10-17T14:08:00.000Z"])
    status: Status


class TrainingData(_Model):
    actor_id: int
    actor_name: str
    training_images: list[TrainingImage]
    total_count: int
    synced_count: int
    local_only_count: int
    s3_only_count: int
    out_of_sync_count: int


class ActorSummary(_Model):
    actor_id: int
    actor_name: str
    manifest: bool = Field(description="false until an apply has written the actor's manifest")
    training_data_url: str
    total_count: int
    synced_count: int
    local_only_count: int
    s3_only_count: int
    out_of_sync_count: int


class ActorList(_Model):
    actors: list[ActorSummary]


class Resolution(_Model):
    store: str
    key: str
    uri: str
    via: Literal["canonical", "source"] = Field(description="canonical: the processed key; source: where it comes from")


class DatasetEntry(_Model):
    name: str
    tier: str
    category: str
    format: str
    stages: list[str]
    canonical: str
    source: str | None
    state: str = Field(description="organised, pending (the next apply organises it) or missing")
    resolves_to: Resolution | None = Field(description="where a reader finds it now; null when nowhere")


class DatasetList(_Model):
    datasets: list[DatasetEntry]
    registry: dict[str, Any] | None = Field(description="dataset_registry.json as the last apply wrote it")


class ErrorBody(_Model):
    error: str
    status: int
