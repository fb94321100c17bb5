"""The training-data service on a real uvicorn (loopback, free port) over the demo world on SeaweedFS."""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI

from reconciler.dev.live_server import LiveServer
from reconciler.dev.seaweed import SeaweedServer, unique_bucket_name, validate_bucket_name
from reconciler.service.app import create_app
from tests.integration.demo_world import Demo, make_demo
from tests.service.openapi_check import checked_client

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class World:
    demo: Demo
    server: LiveServer
    http: httpx.Client

    def state(self) -> dict[str, Any]:
        """Everything a request could change: every local file's bytes hash and every S3 object's ETag."""
        files = {
            str(p.relative_to(self.demo.root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(self.demo.root.rglob("*"))
            if p.is_file()
        }
        objects = {}
        for bucket in (self.demo.data_bucket, self.demo.actor_bucket):
            pages = self.demo.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for page in pages:
                for o in page.get("Contents", []):
                    objects[f"{bucket}/{o['Key']}"] = o["ETag"]
        return {"files": files, "objects": objects}


# FastAPI builds an app's OpenAPI document from its title, version, description and routes alone (~0.6 CPU-s);
# every app the tests create has the same, so each is built once per set.
_OPENAPI: dict[tuple[object, ...], dict[str, Any]] = {}


def openapi_of(app: FastAPI) -> dict[str, Any]:
    routes = tuple((getattr(r, "path", None), tuple(sorted(getattr(r, "methods", None) or ()))) for r in app.routes)
    key = (app.title, app.version, app.description, routes)
    if key not in _OPENAPI:
        _OPENAPI[key] = app.openapi()
    return _OPENAPI[key]


@contextmanager
def serving(
    tmp: Path, seaweed: SeaweedServer, name: str, edit: Callable[[Path], None] | None = None, **options: Any
) -> Iterator[World]:
    """The demo world (specs changed by `edit` first), applied once by the CLI (manifests written), served by
    pixel's app; its buckets removed after. Every answer the client gets is checked against the app's OpenAPI."""
    # make_demo creates the two buckets with its client; removed with it too (a boto3 client costs ~0.12 CPU-s).
    bucket = validate_bucket_name(unique_bucket_name(name))
    demo = make_demo(tmp, seaweed, bucket)
    demo.env["PIXEL_CACHE_DIR"] = str(tmp / "cache")  # the CLI's applies and the service: one apply record
    if edit is not None:
        edit(demo.specs)
    try:
        run = demo.pixel("apply", "--auto-approve", "-q")
        assert run.code == 0, run.out + run.err
        with pytest.MonkeyPatch.context() as patch:
            for key, value in demo.env.items():
                patch.setenv(key, value)
            app = create_app(demo.specs, token=options.pop("token", TOKEN), status_ttl=0, **options)
            with LiveServer(app) as server, checked_client(openapi_of(app), server.url) as http:
                yield World(demo, server, http)
    finally:
        for name_ in (demo.actor_bucket, bucket):
            try:  # SeaweedFS deletes a bucket with its objects (as SeaweedServer.delete_bucket)
                with contextlib.suppress(demo.client.exceptions.NoSuchBucket):
                    demo.client.delete_bucket(Bucket=name_)
            except (BotoCoreError, ClientError) as exc:
                warnings.warn(f"could not delete test bucket {name_}: {exc}", stacklevel=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedServer) -> Iterator[World]:
    """Shared by a module's read-only tests (and bad-input tests, which must change nothing)."""
    with serving(tmp_path_factory.mktemp("service"), seaweed, "svc-read") as served:
        yield served


@pytest.fixture
def fresh_world(tmp_path: Path, seaweed: SeaweedServer, request: pytest.FixtureRequest) -> Iterator[World]:
    """A world of this test's own, for mutations."""
    with serving(tmp_path, seaweed, request.node.name) as served:
        yield served


def _pruning_actors(specs: Path) -> None:
    """Let pixel delete in the actor bucket: an exclusive tier and `prune: true`; 0021 (S3 only) pulled."""
    tiers = specs / "tiers.yaml"
    tiers.write_text(tiers.read_text().replace("ownership: shared", "ownership: exclusive"))
    actors = specs / "actors.yaml"
    text = actors.read_text().replace("  authority: local\n", "  authority: local\n  prune: true\n", 1)
    text += '    - id: "0021"\n      name: 0021_latina_35_female\n      authority: s3\n'
    actors.write_text(text)


@pytest.fixture
def pruning_world(tmp_path: Path, seaweed: SeaweedServer) -> Iterator[World]:
    with serving(tmp_path, seaweed, "svc-prune", edit=_pruning_actors) as served:
        yield served
