"""A Workspace is never changed in place: the service shares one between request threads."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from reconciler.apply.session import LockOptions, locked
from reconciler.dev.seaweed import SeaweedServer
from reconciler.spec import load_desired
from reconciler.stores.s3 import S3Store
from reconciler.workflow import open_stores
from tests.integration.pixelenv import write_specs

pytestmark = pytest.mark.integration


def test_the_lock_binds_a_new_workspace_and_leaves_the_shared_one_as_it_was(
    seaweed: SeaweedServer, bucket: str, aws_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "data" / "raw").mkdir(parents=True)
    specs = write_specs(tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket, root=tmp_path / "data",
                        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:raw/"}])
    shared = open_stores(load_desired(specs, os.environ), parallelism=2)
    before = dict(shared.stores)
    with locked(shared, LockOptions()) as (held, lost):
        # Another request reading the shared workspace meanwhile sees the stores it always had.
        assert dict(shared.stores) == before
        bound = held.stores["s3"]
        assert isinstance(bound, S3Store) and bound is not before["s3"]
        assert bound._journal.apply_id is not None  # its upload records name this apply's lock
        assert held.stores["disk"] is before["disk"]
        assert held.desired == shared.desired
        assert not lost.is_set()
    assert dict(shared.stores) == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        shared.stores = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        shared.stores["s3"] = bound  # type: ignore[index]
