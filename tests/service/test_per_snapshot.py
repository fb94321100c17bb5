"""Answers derived from a snapshot are built once per snapshot, and afresh for the next one (never a stale one)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

from reconciler.service.state import Service, Snapshot


def test_a_derived_answer_is_built_once_per_snapshot_and_again_for_a_new_one(tmp_path: Path) -> None:
    asyncio.run(_built_once_per_snapshot(Service(tmp_path / "specs")))


async def _built_once_per_snapshot(service: Service) -> None:
    first, second = cast(Snapshot, object()), cast(Snapshot, object())
    built: list[str] = []

    def build(label: str) -> str:
        built.append(label)
        return label

    assert await service.per_snapshot(first, "page", lambda: build("page 1")) == "page 1"
    assert await service.per_snapshot(first, "page", lambda: build("again")) == "page 1"
    assert await service.per_snapshot(first, "status", lambda: build("status 1")) == "status 1"
    assert await service.per_snapshot(second, "page", lambda: build("page 2")) == "page 2"
    assert await service.per_snapshot(second, "status", lambda: build("status 2")) == "status 2"
    assert built == ["page 1", "status 1", "page 2", "status 2"]
