"""One fixed plan that touches every renderer's cases: the golden files are rendered from it."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.model import (
    Action,
    ActionKind,
    Authority,
    Change,
    Desired,
    Finding,
    FindingKind,
    LocalStoreSpec,
    MappingSpec,
    ObjectRef,
    Plan,
    Precondition,
    S3StoreSpec,
    TierSpec,
)

GOLDEN = Path(__file__).parent / "golden"
MD5_A = "0123456789abcdef0123456789abcdef"
MD5_B = "fedcba9876543210fedcba9876543210"


def check_golden(name: str, text: str) -> None:
    """Compare with golden/NAME; PIXEL_UPDATE_GOLDEN=1 rewrites it (review the diff before committing)."""
    path = GOLDEN / name
    if os.environ.get("PIXEL_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file (see the diff above)"


def fixed_desired() -> Desired:
    return Desired(
        stores={
            "pixel-data": S3StoreSpec(name="pixel-data", bucket="pixel-data"),
            "staging": LocalStoreSpec(name="staging", root="/data/gdrive"),
        },
        mappings=(
            MappingSpec("raw", "staging", "raw", "pixel-data", "datasets/gdrive/raw/", prune=True),
            MappingSpec("actors", "staging", "actors", "pixel-data", "actors/", authority=Authority.NONE),
        ),
        tiers=(TierSpec("processed", "pixel-data", "datasets/gdrive/processed/"),),
    )


def _upload(key: str, size: int, *, update: bool = False) -> Action:
    return Action(
        id=f"upload:pixel-data:datasets/gdrive/raw/{key}",
        kind=ActionKind.UPLOAD,
        change=Change.UPDATE if update else Change.CREATE,
        mapping="raw",
        target=ObjectRef("pixel-data", f"datasets/gdrive/raw/{key}"),
        source=ObjectRef("staging", f"raw/{key}"),
        reason=f"content differs: md5 {MD5_B[:8]} ≠ {MD5_A[:8]}" if update else "new file",
        size=size,
        md5=MD5_A,
        precondition=Precondition(target_etag=MD5_B) if update else Precondition(target_absent=True),
    )


def fixed_plan() -> Plan:
    cot = [_upload(f"cot/shard-{i:02d}.jsonl", 1_048_576 + i) for i in range(12)]
    update = _upload("notes.json", 2_048, update=True)
    delete = Action(
        id="delete:pixel-data:datasets/gdrive/raw/old.jsonl",
        kind=ActionKind.DELETE,
        change=Change.DELETE,
        mapping="raw",
        target=ObjectRef("pixel-data", "datasets/gdrive/raw/old.jsonl"),
        reason="not in the local tree; pixel-data is pruned here",
        size=512,
        precondition=Precondition(target_etag=MD5_B),
    )
    rehash = Action(
        id="rehash:pixel-data:datasets/gdrive/raw/big.bin",
        kind=ActionKind.REHASH,
        change=Change.READ,
        mapping="raw",
        target=ObjectRef("pixel-data", "datasets/gdrive/raw/big.bin"),
        reason="multipart ETag: md5 unknown",
        size=10_485_760,
        precondition=Precondition(target_etag="abc-2"),
    )
    move = Action(
        id="move:pixel-data:datasets/gdrive/processed/priority/mix.jsonl",
        kind=ActionKind.MOVE,
        change=Change.CREATE,
        mapping="processed",
        target=ObjectRef("pixel-data", "datasets/gdrive/processed/priority/mix.jsonl"),
        source=ObjectRef("pixel-data", "datasets/acquired/mix.jsonl"),
        reason="organise dataset 'priority_mix' (move)",
        size=4_096,
        md5=MD5_A,
        precondition=Precondition(target_absent=True, source_etag=MD5_A),
    )
    move_delete = Action(
        id="delete:pixel-data:datasets/acquired/mix.jsonl",
        kind=ActionKind.DELETE,
        change=Change.DELETE,
        mapping="processed",
        target=ObjectRef("pixel-data", "datasets/acquired/mix.jsonl"),
        reason="source of a move, deleted once the copy is verified",
        size=4_096,
        precondition=Precondition(target_etag=MD5_A),
    )
    copy = Action(
        id="copy:pixel-data:datasets/gdrive/processed/cot_reasoning/c.jsonl",
        kind=ActionKind.COPY,
        change=Change.CREATE,
        mapping="processed",
        target=ObjectRef("pixel-data", "datasets/gdrive/processed/cot_reasoning/c.jsonl"),
        source=ObjectRef("pixel-data", "datasets/gdrive/raw/organise/c.jsonl"),
        reason="organise dataset 'clinical_cot' (copy)",
        size=8_192,
        md5=MD5_B,
        precondition=Precondition(target_absent=True, source_etag=MD5_B),
    )
    manifest = Action(
        id="write-manifest:staging:ai/data/dataset_registry.json",
        kind=ActionKind.WRITE_MANIFEST,
        change=Change.UPDATE,
        mapping="registry",
        target=ObjectRef("staging", "ai/data/dataset_registry.json"),
        reason="registry rewritten from what S3 holds",
        size=300,
    )
    actions = (*cot, update, delete, rehash, move, move_delete, copy, manifest)
    edges = (
        (move.id, move_delete.id),
        (move.id, manifest.id),
        (copy.id, manifest.id),
    )
    findings = (
        Finding(FindingKind.CONFLICT, "actors", "pixel-data:actors/0042/0042_3.jpg", "out of sync; authority is none"),
        Finding(FindingKind.ORPHAN, "actors", "staging:actors/0042/stray.png", "no manifest lists it"),
        Finding(FindingKind.MISSING, "actors", "0042_11.jpg", "declared (count: 12) but on neither side"),
    )
    return Plan(actions=actions, edges=edges, findings=findings, spec_digest="d" * 64)
