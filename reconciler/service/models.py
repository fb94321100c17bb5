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


# --- /api/status: `pixel status --format json` (reconciler.plan.status), or the degraded answer --------------------


class Count(_Model):
    count: int
    bytes: int


class StatusCounts(_Model):
    """Files (count and bytes) per seed status."""

    synced: Count
    local_only: Count
    s3_only: Count
    out_of_sync: Count


class TierStatus(StatusCounts):
    objects: Count = Field(description="every object observed in the tier, whoever owns it")


class ActorStatus(StatusCounts):
    name: str
    orphans: int
    missing: int
    excluded: list[str] = Field(description="images excluded from the manifest (kept in S3), not in the counts")


class Totals(StatusCounts):
    orphans: int
    missing: int
    excluded: int = Field(description="images excluded from the manifests (kept in S3)")


class DatasetsStatus(_Model):
    organised: int
    pending: int
    missing: int
    by_name: dict[str, Literal["organised", "pending", "missing"]]


class FinalStatus(_Model):
    published: dict[str, Any] | None = Field(description="the published manifest's summary; null when none is")
    current: bool
    rebuild_reason: str | None


class StatusDocument(_Model):
    """One observation and plan, counted: per tier, actor and mapping; datasets and findings from the plan."""

    tiers: dict[str, TierStatus]
    actors: dict[str, ActorStatus] = Field(description="by actor id, e.g. `0042`")
    mappings: dict[str, StatusCounts] = Field(description="mappings that are not an actor's")
    totals: Totals
    datasets: DatasetsStatus | None = Field(None, description="present when the specs register datasets")
    findings: dict[str, int] | None = Field(None, description="findings of the plan, by kind")
    final_dataset: FinalStatus | None = Field(None, description="present when the specs declare a final dataset")


class StoreReachability(_Model):
    reachable: bool
    since: str | None = Field(None, description="ISO-8601: unreachable since")
    reason: str | None = Field(None, description="why the last probe failed")


class DegradedStatus(_Model):
    """/api/status while S3 is unreachable: nothing observed, which S3 stores are down, since when and why."""

    observed: Literal[False]
    degraded: Literal[True]
    stores: dict[str, StoreReachability]


# --- /api/final-dataset: the published manifest.json (reconciler.apply.final) ------------------------------------


class FinalSource(_Model):
    name: str
    key: str
    s3_url: str
    md5: str
    size: int


class SplitTotals(_Model):
    shards: int
    records: int
    bytes: int


class FinalShard(_Model):
    split: str
    id: str
    key: str
    s3_url: str
    md5: str
    size: int
    records: int


class FinalCompiled(_Model):
    key: str
    s3_url: str
    md5: str
    size: int
    records: int


class FinalCounts(_Model):
    read: int
    duplicates: int
    written: dict[str, int]


class FinalDatasetManifest(_Model):
    format: Literal["pixel-final-dataset"]
    version: int
    build: str = Field(description="32 hex digits naming the recipe and every source's md5")
    created: str = Field(examples=["2025-10-17T14:08:00Z"])
    recipe: dict[str, Any] = Field(description="the recipe as declared, with its digest")
    sources: list[FinalSource]
    splits: dict[str, SplitTotals]
    shards: list[FinalShard]
    compiled: FinalCompiled
    counts: FinalCounts
    history: list[str] = Field(
        [], description="keys earlier builds wrote that S3 still held at publish: the dataset's own until deleted"
    )
