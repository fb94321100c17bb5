"""A small loader world on the SeaweedFS fixture for the loader's hostile tests: specs, a put, a CLI env."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import textwrap
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

PROCESSED = "datasets/processed/"


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def rows(tag: str, n: int) -> list[dict[str, Any]]:
    return [{"id": f"{tag}-{i}", "text": f"record {i} of {tag}"} for i in range(n)]


@dataclass
class LoaderWorld:
    specs: Path
    cache: Path
    client: Any
    bucket: str
    env: dict[str, str]

    def put(self, key: str, body: bytes, *, md5_meta: bool = True) -> str:
        """Upload `body` at `key` (with its md5 recorded, as pixel writes it); returns the md5."""
        md5 = hashlib.md5(body).hexdigest()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata={"md5": md5} if md5_meta else {})
        return md5

    def cli_env(self) -> dict[str, str]:
        return {**self.env, "PIXEL_CACHE_DIR": str(self.cache.parent)}


def loader_world(tmp_path: Path, endpoint: str, client: Any, bucket: str, env: dict[str, str],
                 datasets: str = "") -> LoaderWorld:
    """Specs with one S3 store `data` whose processed tier is `datasets/processed/`; `datasets` is YAML for
    the registry items (indented as list items), if any."""
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir(parents=True, exist_ok=True)
    registry = (
        "datasets:\n  registry: work:registry.json\n  items:\n" + textwrap.indent(textwrap.dedent(datasets), "    ")
        if datasets
        else ""
    )
    (spec_dir / "world.yaml").write_text(
        textwrap.dedent(
            f"""\
            stores:
              data:
                type: s3
                bucket: {bucket}
                endpoint: {endpoint}
                region: us-east-1
                addressing_style: path
                checksum: when_required
              work:
                type: local
                root: {spec_dir / "work"}
            tiers:
              processed: {{at: "data:{PROCESSED}", categories: [cot]}}
            """
        )
        + registry
    )
    # PIXEL_CACHE_DIR/datasets is the CLI's dataset cache: tests hand `cache` to load_dataset directly.
    return LoaderWorld(spec_dir, tmp_path / "pixelcache" / "datasets", client, bucket, env)


def opener(body: bytes) -> Callable[[], AbstractContextManager[BinaryIO]]:
    """A store write's source for `body`."""

    def open_() -> AbstractContextManager[BinaryIO]:
        return contextlib.nullcontext(io.BytesIO(body))

    return open_
