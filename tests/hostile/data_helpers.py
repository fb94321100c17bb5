"""What the hostile tests share: a one-mapping spec on the SeaweedFS fixture, and running the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.integration.pixelenv import PIXEL, Run, pixel_in_process, write_specs

# Root without the capabilities that let it read any file: chmod 000 then means what it means for a user.
NO_DAC = ["--bounding-set=-dac_override,-dac_read_search"]


def one_mapping(tmp_path: Path, seaweed: Any, bucket: str, **mapping: object) -> tuple[Path, Path, dict[str, str]]:
    """(spec dir, local root, env) for a single mapping `data` from disk:<from> to s3:<to>."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    specs = write_specs(tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=root,
                        mappings=[{"name": "data", **mapping}])
    env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(tmp_path / "cache"), "NO_COLOR": "1"}
    return specs, root, env


def run(args: list[str], env: dict[str, str], *, no_dac: bool = False) -> Run:
    """`pixel ARGS` as a user runs it: in this process (what the command does is the subject, not its process),
    except with `no_dac`, where a child under setpriv is the only way to drop root's DAC override for the
    command alone (the child gets the worktree's code: PYTHONPATH is passed on)."""
    if not no_dac:
        return pixel_in_process(args, env)
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop root's DAC override"
    proc = subprocess.run(
        [setpriv, *NO_DAC, PIXEL, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def keys(client: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].startswith(".pixel/"):
                out[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out
