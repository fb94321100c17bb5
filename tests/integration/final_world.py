"""A small world for the final-dataset tests: registry datasets in a SeaweedFS bucket, a final_dataset section."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.apply.final import FinalCompiler
from reconciler.model import Action, ActionKind, Observed, Plan
from reconciler.spec import load_desired
from reconciler.workflow import observe_and_plan, open_stores
from reconciler.workspace import Workspace

PREFIX = "datasets/processed/"
MANIFEST = "final_dataset/manifest.json"
COMPILED = "final_dataset/compiled/final_training_dataset.jsonl"


def records(name: str, count: int, *, start: int = 0, text: str = "") -> list[dict[str, Any]]:
    return [
        {"id": f"r{i:05d}", "source": name, "text": text or f"{name} record {i}"} for i in range(start, start + count)
    ]


def jsonl(rows: Iterable[Mapping[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


@dataclass
class FinalWorld:
    root: Path
    specs: Path
    bucket: str
    endpoint: str
    client: Any

    def put_source(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{PREFIX}c/{name}.jsonl", Body=data)

    def write_specs(
        self,
        sources: list[str],
        *,
        shard: str = "{records: 40}",
        dedupe: bool = True,
        splits: str = "{train: 0.8, validation: 0.1, test: 0.1}",
    ) -> None:
        self.specs.mkdir(parents=True, exist_ok=True)
        names = sorted({*sources, "a", "b", "c"})
        items = "\n".join(f"    - {{name: {n}, tier: processed, category: c, format: jsonl}}" for n in names)
        (self.specs / "world.yaml").write_text(
            f"""stores:
  s3:
    type: s3
    bucket: {self.bucket}
    endpoint: {self.endpoint}
    region: us-east-1
    addressing_style: path
    checksum: when_required
  disk:
    type: local
    root: {self.root}
tiers:
  processed: {{at: "s3:{PREFIX}"}}
inventory: {{path: "disk:inventory/s3_manifest.json"}}
datasets:
  items:
{items}
final_dataset:
  sources: [{", ".join(sources)}]
  splits: {splits}
  split_key: id
  shard: {shard}
  dedupe: {str(dedupe).lower()}
  to: s3:final_dataset/
  compiled: {COMPILED}
  manifest: {{key: {MANIFEST}, local: "disk:kept/manifest.json"}}
  workdir: disk:work/final
"""
        )

    def workspace(self) -> Workspace:
        return open_stores(load_desired(self.specs, os.environ), parallelism=4)

    def plan(self) -> tuple[Workspace, Observed, Plan]:
        ws = self.workspace()
        observed, plan = observe_and_plan(ws)
        return ws, observed, plan

    def compile(self, compiler_hook: Any = None) -> tuple[FinalCompiler, Plan]:
        """Run only the plan's compile action, in process, with the stores optionally wrapped."""
        ws, _, plan = self.plan()
        action = compile_action(plan)
        stores = compiler_hook(ws.stores) if compiler_hook is not None else ws.stores
        compiler = FinalCompiler(ws.desired, stores)
        compiler(action)
        return compiler, plan

    def manifest(self) -> dict[str, Any]:
        body = self.client.get_object(Bucket=self.bucket, Key=MANIFEST)["Body"].read()
        return dict(json.loads(body))

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def listed(self, prefix: str = "final_dataset/") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def compile_action(plan: Plan) -> Action:
    [action] = [a for a in plan.actions if a.kind is ActionKind.COMPILE]
    return action


def split_ids(world: FinalWorld, manifest: Mapping[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for shard in manifest["shards"]:
        body = world.get(shard["key"])
        out.setdefault(shard["split"], []).extend(json.loads(line)["id"] for line in body.splitlines())
    return out
