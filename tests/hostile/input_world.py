"""A small pixel world on SeaweedFS for the hostile-input tests: specs, a data root, the CLI in this process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from reconciler.cli import main
from tests.integration.pixelenv import Run, write_specs


@dataclass
class World:
    root: Path
    specs: Path
    env: dict[str, str]
    client: Any
    bucket: str
    plan: Path

    def pixel(self, *args: str) -> Run:
        """The CLI in this process with --specs after the subcommand (as every other test writes it)."""
        runner = CliRunner()
        result = runner.invoke(
            main, [*args[:1], "--specs", str(self.specs), *args[1:]], env={**self.env, "NO_COLOR": "1"},
            catch_exceptions=False,
        )
        return Run(result.exit_code, result.stdout, result.stderr)

    def keys(self) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            found += [o["Key"] for o in page.get("Contents", [])]
        return sorted(found)

    def saved(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.plan.read_text())
        return data

    def save(self, data: dict[str, Any]) -> None:
        self.plan.write_text(json.dumps(data))


def make_world(tmp_path: Path, seaweed: Any, bucket: str, mapping: dict[str, object]) -> World:
    root = tmp_path / "data"
    root.mkdir()
    specs = write_specs(tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root, mappings=[mapping])
    return World(root, specs, seaweed.env(), seaweed.client(), bucket, tmp_path / "plan.json")
