"""Issue 25's offline reads: a warm cache keeps a training job going while S3 is down; a cold object fails
clearly; `offline=True` never contacts S3.

On a SeaweedFS server of this test's own (the session's must keep running): warm the cache, stop the
server, read again.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.dev.seaweed import SeaweedServer, unique_bucket_name
from reconciler.loader import S3DatasetLoader, load_dataset
from reconciler.loader.offline import NotCachedOffline, OfflineWarning
from reconciler.stores.s3 import S3Store
from tests.hostile.loader_world import PROCESSED, jsonl, loader_world, rows
from tests.hostile.test_loader_cache import published_final
from tests.integration.pixelenv import pixel

pytestmark = pytest.mark.integration

DATASETS = """\
- {name: clinical, tier: processed, category: cot, format: jsonl}
- {name: cold, tier: processed, category: cot, format: jsonl}
"""


@pytest.fixture
def own_server() -> Iterator[SeaweedServer]:
    with SeaweedServer() as server:
        yield server


@pytest.mark.slow
def test_a_warm_cache_serves_every_record_with_s3_stopped_and_a_cold_object_fails_naming_it(
    tmp_path: Path, own_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = own_server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bucket = own_server.create_bucket(unique_bucket_name("offline"))
    world = loader_world(tmp_path, own_server.endpoint, own_server.client(), bucket, env, DATASETS)
    world.put(f"{PROCESSED}cot/clinical.jsonl", jsonl(rows("c", 300)))
    world.put(f"{PROCESSED}cot/cold.jsonl", jsonl(rows("cold", 5)))
    applied = pixel(["apply", "--auto-approve", "--specs", str(world.specs)], env)
    assert applied.code == 0, applied.err
    registry = json.loads((world.specs / "work" / "registry.json").read_text())
    assert registry["datasets"]["clinical"]["md5"]  # what pins the object without S3

    expected = [f"c-{i}" for i in range(300)]
    assert [r["id"] for r in load_dataset("clinical", world.specs, cache_dir=world.cache)] == expected
    cli_env = world.cli_env()
    assert pixel(["cat", "clinical", "--specs", str(world.specs)], cli_env).code == 0  # the CLI's cache, warm

    # offline=True does not touch S3, even while it is up.
    def no_s3(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("offline=True contacted S3")

    with monkeypatch.context() as patch:
        for method in ("stat", "open", "list", "recorded_md5s"):
            patch.setattr(S3Store, method, no_s3)
        offline = load_dataset("clinical", world.specs, cache_dir=world.cache, offline=True)
        assert [r["id"] for r in offline] == expected
        loader = S3DatasetLoader(world.specs, cache_dir=world.cache, offline=True)
        assert [r["id"] for r in loader.load_dataset_from_s3("clinical")] == expected
        with pytest.raises(NotCachedOffline, match=r"data:datasets/processed/cot/cold\.jsonl: offline"):
            list(load_dataset("cold", world.specs, cache_dir=world.cache, offline=True))

    own_server.stop()

    # S3 down, not offline: resolved from the registry, served from the verified cache, with a warning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        down = load_dataset("clinical", world.specs, cache_dir=world.cache)
        assert [r["id"] for r in down] == expected
    said = " ".join(str(w.message) for w in caught)
    assert "S3 is unreachable" in said and any(w.category is OfflineWarning for w in caught), said
    with pytest.raises(NotCachedOffline, match=r"cold\.jsonl: S3 is unreachable"), pytest.warns(OfflineWarning):
        list(load_dataset("cold", world.specs, cache_dir=world.cache))

    cat = pixel(["cat", "clinical", "--offline", "--specs", str(world.specs)], cli_env)
    assert cat.code == 0, cat.err
    assert [json.loads(line)["id"] for line in cat.out.splitlines()] == expected
    cold = pixel(["cat", "cold", "--offline", "--specs", str(world.specs)], cli_env)
    assert cold.code == 1 and "cold.jsonl" in cold.err and "no verified copy" in cold.err, cold.err
    assert "Traceback" not in cold.err
    not_pinned = pixel(["cat", "clinical.jsonl", "--offline", "--specs", str(world.specs)], cli_env)
    assert not_pinned.code == 1 and "offline" in not_pinned.err and "Traceback" not in not_pinned.err


@pytest.mark.slow
def test_the_final_dataset_is_read_offline_from_its_kept_manifest_and_the_warm_cache(
    tmp_path: Path, own_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in own_server.env().items():
        monkeypatch.setenv(name, value)
    bucket = own_server.create_bucket(unique_bucket_name("offline-final"))
    world = published_final(tmp_path, own_server.endpoint, own_server.client(), bucket)
    cache = tmp_path / "cache"
    online = [r["id"] for r in load_dataset("final_dataset", world.specs, cache_dir=cache)]
    assert len(online) == 230
    own_server.stop()
    offline = load_dataset("final_dataset", world.specs, cache_dir=cache, offline=True)
    assert [r["id"] for r in offline] == online
    with pytest.warns(OfflineWarning):
        assert [r["id"] for r in load_dataset("final_dataset", world.specs, cache_dir=cache)] == online
