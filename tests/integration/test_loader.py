"""The loader against SeaweedFS: resolution, formats, the verified cache, concurrency, faults, the CLI."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.loader import (
    DatasetChanged,
    DatasetFallbackWarning,
    DatasetNotFound,
    S3DatasetLoader,
    list_datasets,
    load_dataset,
    load_dataset_from_s3,
)
from reconciler.loader.cache import ObjectCache
from tests.faults.proxy import Fault, FaultProxy
from tests.integration.pixelenv import pixel

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PROCESSED = "datasets/gdrive/processed/"
RAW = "datasets/gdrive/raw/"
ACQUIRED = "datasets/acquired/"


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def rows(tag: str, n: int) -> list[dict[str, Any]]:
    return [{"id": f"{tag}-{i}", "text": f"record {i} of {tag}"} for i in range(n)]


def write_world_specs(spec_dir: Path, *, endpoint: str, bucket: str, extra_store: str = "") -> Path:
    spec_dir.mkdir(parents=True, exist_ok=True)
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
              processed: {{at: "data:{PROCESSED}", categories: [cot_reasoning, priority]}}
              raw: {{at: "data:{RAW}"}}
              acquired: {{at: "data:{ACQUIRED}"}}
            datasets:
              registry: work:registry.json
              items:
                - {{name: clinical_cot, tier: processed, category: cot_reasoning, format: jsonl,
                    source: "data:{RAW}organise/clinical_cot.jsonl"}}
                - {{name: crisis, tier: processed, category: priority, format: json,
                    source: "data:{ACQUIRED}crisis.json"}}
                - {{name: nowhere, tier: processed, category: priority, format: jsonl}}
            """
        )
    )
    if extra_store:
        (spec_dir / "extra.yaml").write_text("stores:\n" + textwrap.indent(extra_store, "  "))
    return spec_dir


@pytest.fixture
def world(tmp_path: Path, seaweed: Any, bucket: str, aws_env: dict[str, str]) -> dict[str, Any]:
    client = seaweed.client()

    def put(key: str, body: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"md5": hashlib.md5(body).hexdigest()})

    put(f"{PROCESSED}cot_reasoning/clinical_cot.jsonl", jsonl(rows("cot", 25)))
    put(f"{ACQUIRED}crisis.json", json.dumps(rows("crisis", 7)).encode())
    for i in range(3):
        put(f"{PROCESSED}cot_reasoning/shard-{i}.jsonl", jsonl(rows(f"shard{i}", 4)))
    put(f"{PROCESSED}priority/zipped.jsonl.gz", gzip.compress(jsonl(rows("gz", 5))))
    put(f"{RAW}loose/dataset.json", json.dumps({"only": "one record"}).encode())
    specs = write_world_specs(tmp_path / "specs", endpoint=seaweed.endpoint, bucket=bucket)
    return {"specs": specs, "put": put, "client": client, "bucket": bucket, "cache": tmp_path / "cache",
            "env": aws_env, "tmp": tmp_path, "seaweed": seaweed}


def ids(records: Any) -> list[str]:
    return [r["id"] for r in records]


def test_registry_names_resolve_to_processed_else_to_their_source_with_a_warning(world: dict[str, Any]) -> None:
    ds = load_dataset("clinical_cot", specs=world["specs"], cache_dir=world["cache"])
    assert ids(ds) == [f"cot-{i}" for i in range(25)]
    fallback = r"crisis.*reading its source .*acquired/crisis.json in tier acquired"
    with pytest.warns(DatasetFallbackWarning, match=fallback):
        crisis = load_dataset("crisis", specs=world["specs"], cache_dir=world["cache"])
    assert ids(crisis) == [f"crisis-{i}" for i in range(7)]  # a JSON array, item by item
    rows_by_name = {row["name"]: row for row in list_datasets(world["specs"])}
    assert rows_by_name["clinical_cot"]["tier"] == "processed"
    assert rows_by_name["clinical_cot"]["md5"] == hashlib.md5(jsonl(rows("cot", 25))).hexdigest()
    assert rows_by_name["crisis"]["tier"] == "acquired" and rows_by_name["crisis"]["status"] == "fallback"
    assert rows_by_name["nowhere"]["status"] == "absent"
    assert [r["name"] for r in list_datasets(world["specs"], tier="processed")] == ["clinical_cot"]


def test_file_names_patterns_gzip_and_unknown_names(world: dict[str, Any]) -> None:
    specs, cache = world["specs"], world["cache"]
    assert list(load_dataset("dataset.json", specs, cache_dir=cache)) == [{"only": "one record"}]  # found in raw
    shards = load_dataset("cot_reasoning/shard-*.jsonl", specs, cache_dir=cache)
    assert ids(shards) == [f"shard{i}-{j}" for i in range(3) for j in range(4)]
    assert ids(load_dataset("zipped.jsonl.gz", specs, category="priority", cache_dir=cache)) == [
        f"gz-{i}" for i in range(5)
    ]
    with pytest.raises(DatasetNotFound) as err:
        load_dataset("clinical_cott", specs)
    assert err.value.closest[0] == "clinical_cot" and "closest registered names: clinical_cot" in str(err.value)
    with pytest.raises(DatasetNotFound, match="no final dataset is declared in the specs"):
        load_dataset("final_dataset", specs, split="train")


def test_seed_loader_lists_by_the_seeds_prefix_and_loads_by_name_and_category(world: dict[str, Any]) -> None:
    loader = S3DatasetLoader(world["specs"], cache_dir=world["cache"])
    found = loader.list_datasets(prefix="gdrive/processed/")
    keys = {d["key"] for d in found}
    assert {f"{PROCESSED}cot_reasoning/clinical_cot.jsonl", f"{PROCESSED}priority/zipped.jsonl.gz"} <= keys
    data = load_dataset_from_s3("clinical_cot.jsonl", category="cot_reasoning", specs=world["specs"],
                                cache_dir=world["cache"])
    assert ids(data) == [f"cot-{i}" for i in range(25)]


def test_cache_serves_a_verified_copy_and_never_a_stale_one(world: dict[str, Any]) -> None:
    specs, cache = world["specs"], world["cache"]
    first = load_dataset("clinical_cot", specs, cache_dir=cache)
    assert len(ids(first)) == 25  # not list(): it asks len() first, which counts the records in a pass of its own
    assert first.cache is not None and (first.cache.downloads, first.cache.hits) == (1, 0)
    again = load_dataset("clinical_cot", specs, cache_dir=cache)
    assert len(ids(again)) == 25
    assert again.cache is not None and (again.cache.downloads, again.cache.hits) == (0, 1)
    # Same size, other bytes: the HEAD's md5 differs, so the cached copy is not used.
    world["put"](f"{PROCESSED}cot_reasoning/clinical_cot.jsonl", jsonl(rows("new", 25)))
    with pytest.raises(DatasetChanged, match="changed since the dataset was resolved"):
        list(again)
    fresh = load_dataset("clinical_cot", specs, cache_dir=cache)
    assert ids(fresh)[:2] == ["new-0", "new-1"]
    assert fresh.cache is not None and fresh.cache.downloads == 1


def test_lru_bound_evicts_the_least_recently_used_objects(world: dict[str, Any]) -> None:
    cache = ObjectCache(world["cache"], limit=500)
    for i in range(3):
        ds = load_dataset(f"shard-{i}.jsonl", world["specs"], category="cot_reasoning", cache_dir=world["cache"],
                          cache_limit=500)
        list(ds)
        time.sleep(0.01)
    kept = sorted(p.name for p in (world["cache"] / "objects").glob("*/*") if not p.name.endswith(".part"))
    total = sum(p.stat().st_size for p in (world["cache"] / "objects").glob("*/*"))
    assert total <= 500 and len(kept) < 3
    newest = hashlib.md5(jsonl(rows("shard2", 4))).hexdigest()
    assert cache.path(newest).exists()


SLOW_READER = """
import sys, time
from reconciler.loader import load_dataset
from reconciler.stores.s3 import S3Store

real_open = S3Store.open
def slow_open(self, key, *, if_match=None):
    class Slow:
        def __init__(self, inner): self.inner = inner
        def __enter__(self):
            stream = self.inner.__enter__()
            class R:
                def read(self, n=-1):
                    data = stream.read(65536)
                    print("downloading", flush=True)
                    time.sleep(0.2)
                    return data
            return R()
        def __exit__(self, *a): return self.inner.__exit__(*a)
    return Slow(real_open(self, key, if_match=if_match))
S3Store.open = slow_open
ds = load_dataset("big.jsonl", sys.argv[1], cache_dir=sys.argv[2])
for record in ds:
    print(record["id"], flush=True)
    time.sleep(60)
"""


def test_a_killed_reader_leaves_no_partial_file_that_is_later_used(world: dict[str, Any]) -> None:
    big = jsonl(rows("big", 20000))  # ~0.8 MiB: 13 slow chunks, killed after the first
    world["put"](f"{PROCESSED}priority/big.jsonl", big)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", SLOW_READER, str(world["specs"]), str(world["cache"])],
                             stdout=subprocess.PIPE, env=env, text=True)
    assert child.stdout is not None
    # Killed mid-download: no record is handed on before the whole object is verified.
    assert child.stdout.readline().strip() == "downloading"
    child.send_signal(signal.SIGKILL)
    child.wait()
    objects = world["cache"] / "objects"
    md5 = hashlib.md5(big).hexdigest()
    assert [p.name.endswith(".part") for p in objects.glob("*/*")] == [True]  # only a temp file was left
    ds = load_dataset("big.jsonl", world["specs"], cache_dir=world["cache"])
    assert ids(ds) == [f"big-{i}" for i in range(20000)]
    assert sorted(p.name for p in objects.glob("*/*")) == [md5]  # verified copy in place, the leftover gone
    assert hashlib.md5(ObjectCache(world["cache"]).path(md5).read_bytes()).hexdigest() == md5


CONCURRENT_READER = """
import json, sys
from reconciler.loader import load_dataset
ds = load_dataset("cot_reasoning/*.jsonl", sys.argv[1], cache_dir=sys.argv[2])
got = [r["id"] for r in ds]
print(json.dumps({"records": len(got), "downloads": ds.cache.downloads, "hits": ds.cache.hits}))
"""


def test_eight_processes_fetch_each_object_once(world: dict[str, Any]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_READER, str(world["specs"]), str(world["cache"])],
                         stdout=subprocess.PIPE, env=env, text=True)
        for _ in range(8)
    ]
    reports = [json.loads(child.communicate(timeout=120)[0]) for child in children]
    assert [r["records"] for r in reports] == [25 + 12] * 8  # clinical_cot + 3 shards
    assert sum(r["downloads"] for r in reports) == 4  # four objects, each fetched by one process
    assert sum(r["hits"] for r in reports) == 8 * 4 - 4


def test_throttling_and_dropped_connections_are_retried(world: dict[str, Any], tmp_path: Path) -> None:
    faults = [
        Fault("error", method="GET", path=r"clinical_cot", times=2),  # 503 SlowDown, twice
        Fault("reset", method="GET", path=r"clinical_cot"),  # then the connection dropped
    ]
    with FaultProxy(world["seaweed"].endpoint, faults, deadline=60) as proxy:
        specs = write_world_specs(tmp_path / "proxied", endpoint=proxy.endpoint, bucket=world["bucket"])
        ds = load_dataset("clinical_cot", specs, cache_dir=world["cache"])
        assert ids(ds) == [f"cot-{i}" for i in range(25)]
        assert proxy.injected() == 3


def test_a_body_cut_halfway_resumes_from_where_it_broke_pinned_to_the_same_version(
    world: dict[str, Any], tmp_path: Path
) -> None:
    body = jsonl(rows("cut", 100000))  # ~5 MiB, cut after ~2.5: the reads of the first MiBs arrive before it
    world["put"](f"{PROCESSED}priority/cut.jsonl", body)
    with FaultProxy(world["seaweed"].endpoint, [Fault("cut", method="GET", path=r"cut\.jsonl")], deadline=60) as proxy:
        specs = write_world_specs(tmp_path / "proxied", endpoint=proxy.endpoint, bucket=world["bucket"])
        got = ids(load_dataset("cut.jsonl", specs, cache_dir=tmp_path / "cache"))
        gets = [line for line in proxy.log.lines if line.startswith("GET ") and "cut.jsonl" in line]
    assert got == [f"cut-{i}" for i in range(100000)] and proxy.injected("cut") == 1
    assert len(gets) == 2 and "range=" not in gets[0], gets
    # The second GET asks for the rest only, and only of the version the first one began.
    resumed_at = re.search(r"range=bytes=(\d+)-", gets[1])
    assert resumed_at is not None and 0 < int(resumed_at.group(1)) < len(body) and "if-match=" in gets[1], gets
    assert hashlib.md5(ObjectCache(tmp_path / "cache").path(hashlib.md5(body).hexdigest()).read_bytes()
                       ).hexdigest() == hashlib.md5(body).hexdigest()


def test_cli_datasets_and_cat(world: dict[str, Any]) -> None:
    env = {**world["env"], "PIXEL_CACHE_DIR": str(world["cache"])}
    listed = pixel(["datasets", "--specs", str(world["specs"]), "--format", "json"], env)
    assert listed.code == 0, listed.err
    assert {r["name"]: r["tier"] for r in json.loads(listed.out)} == {
        "clinical_cot": "processed", "crisis": "acquired", "nowhere": None}
    table = pixel(["datasets", "--specs", str(world["specs"])], env)
    assert "clinical_cot  processed" in table.out and "absent" in table.out
    cat = pixel(["cat", "clinical_cot", "--specs", str(world["specs"]), "--limit", "3"], env)
    assert cat.code == 0 and [json.loads(line)["id"] for line in cat.out.splitlines()] == ["cot-0", "cot-1", "cot-2"]
    missing = pixel(["cat", "clinical_cott", "--specs", str(world["specs"])], env)
    assert missing.code == 1 and "closest registered names: clinical_cot" in missing.err
    assert "Traceback" not in missing.err


def test_cat_into_a_closed_pipe_ends_quietly(world: dict[str, Any]) -> None:
    world["put"](f"{PROCESSED}priority/big.jsonl", jsonl(rows("big", 60000)))
    env = {**os.environ, **world["env"], "PIXEL_CACHE_DIR": str(world["cache"])}
    pixel_bin = str(Path(sys.executable).with_name("pixel"))
    done = subprocess.run(f"{pixel_bin} cat big.jsonl --specs {world['specs']} | head -1", shell=True, env=env,
                          capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout)["id"] == "big-0"
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_credentials_from_env_vars_the_store_names_loaded_from_an_env_file(world: dict[str, Any]) -> None:
    secret = world["env"]["AWS_SECRET_ACCESS_KEY"]
    store = textwrap.dedent(
        f"""\
        ovh:
          type: s3
          bucket: {world["bucket"]}
          endpoint: {world["seaweed"].endpoint}
          region: us-east-1
          addressing_style: path
          credentials_env: {{access_key_id: OVH_ACCESS_KEY, secret_access_key: OVH_SECRET_KEY}}
        """
    )
    specs = write_world_specs(world["tmp"] / "ovh", endpoint=world["seaweed"].endpoint, bucket=world["bucket"],
                              extra_store=store)
    dotenv = world["tmp"] / ".env"
    dotenv.write_text(f"# the seed's ai/.env\nexport OVH_ACCESS_KEY={world['env']['AWS_ACCESS_KEY_ID']}\n"
                      f"OVH_SECRET_KEY='{secret}'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("OVH_")}
    env["PIXEL_CACHE_DIR"] = str(world["cache"])
    key = f"ovh:{PROCESSED}cot_reasoning/clinical_cot.jsonl"
    done = pixel(["cat", key, "--specs", str(specs), "--env-file", str(dotenv), "--limit", "1"], env)
    assert done.code == 0, done.err
    assert json.loads(done.out)["id"] == "cot-0"
    via_env = pixel(["cat", key, "--specs", str(specs), "--limit", "1"], {**env, "PIXEL_ENV_FILE": str(dotenv)})
    assert via_env.code == 0 and json.loads(via_env.out)["id"] == "cot-0"
    unset = pixel(["cat", key, "--specs", str(specs), "--limit", "1", "-v"], env)
    assert unset.code == 1 and "OVH_ACCESS_KEY, OVH_SECRET_KEY" in unset.err and "not set" in unset.err
    for run in (done, via_env, unset):
        assert secret not in run.out + run.err


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A stand-in for torch.utils.data: IterableDataset and a settable get_worker_info."""
    import types

    state: dict[str, Any] = {"info": None}
    data = types.ModuleType("torch.utils.data")

    class IterableDataset:
        pass

    data.IterableDataset = IterableDataset  # type: ignore[attr-defined]
    data.get_worker_info = lambda: state["info"]  # type: ignore[attr-defined]
    utils = types.ModuleType("torch.utils")
    utils.data = data  # type: ignore[attr-defined]
    torch = types.ModuleType("torch")
    torch.utils = utils  # type: ignore[attr-defined]
    for name, module in (("torch", torch), ("torch.utils", utils), ("torch.utils.data", data)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "reconciler.loader.torch_compat", raising=False)
    state["IterableDataset"] = IterableDataset
    yield state


def test_dataloader_workers_split_by_get_worker_info(world: dict[str, Any], fake_torch: dict[str, Any]) -> None:
    import types

    ds = load_dataset("cot_reasoning/*.jsonl", world["specs"], cache_dir=world["cache"])
    assert isinstance(ds, fake_torch["IterableDataset"])  # DataLoader sees an iterable-style dataset
    parts = []
    for worker in range(3):
        fake_torch["info"] = types.SimpleNamespace(id=worker, num_workers=3)
        parts.append(ids(ds))
    fake_torch["info"] = None
    everything = ids(ds)
    assert sorted(r for part in parts for r in part) == sorted(everything) and len(everything) == 37
    assert [len(p) for p in parts] == [13, 12, 12]


def test_an_object_whose_etag_is_no_md5_is_read_and_cached_by_its_recorded_md5(world: dict[str, Any]) -> None:
    client, bucket, key = world["client"], world["bucket"], f"{PROCESSED}priority/multipart.jsonl"
    body = jsonl(rows("mp", 10))
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata={"md5": hashlib.md5(body).hexdigest()})
    part = client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=body)
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    assert "-" in client.head_object(Bucket=bucket, Key=key)["ETag"]  # a multipart ETag
    first = load_dataset("multipart.jsonl", world["specs"], cache_dir=world["cache"])
    assert ids(first) == [f"mp-{i}" for i in range(10)]
    again = load_dataset("multipart.jsonl", world["specs"], cache_dir=world["cache"])
    assert ids(again) == [f"mp-{i}" for i in range(10)]
    assert first.cache is not None and again.cache is not None
    assert (first.cache.downloads, again.cache.hits) == (1, 1)


def test_a_malformed_line_names_key_and_line_or_is_skipped(world: dict[str, Any]) -> None:
    world["put"](f"{PROCESSED}priority/broken.jsonl", b'{"id": "a"}\n{"id": \n{"id": "c"}\n')
    env = {**world["env"], "PIXEL_CACHE_DIR": str(world["cache"])}
    bad = pixel(["cat", "broken.jsonl", "--specs", str(world["specs"])], env)
    assert bad.code == 1 and f"{PROCESSED}priority/broken.jsonl: line 2: not valid JSON" in bad.err
    assert "Traceback" not in bad.err
    skipped = pixel(["cat", "broken.jsonl", "--specs", str(world["specs"]), "--on-error", "skip"], env)
    assert skipped.code == 0 and [json.loads(x)["id"] for x in skipped.out.splitlines()] == ["a", "c"]
    assert "1 malformed record(s) skipped" in skipped.err


@pytest.mark.slow
def test_memory_does_not_grow_with_the_object(world: dict[str, Any]) -> None:
    from tests.integration.pixelenv import pixel_rss

    line = json.dumps({"id": "x", "text": "y" * 1000}).encode() + b"\n"
    big = line * (48 * 1024 * 1024 // len(line))  # 48 MiB
    world["put"](f"{PROCESSED}priority/large.jsonl", big)
    env = {**world["env"], "PIXEL_CACHE_DIR": str(world["cache"])}
    done = pixel_rss(["cat", "large.jsonl", "--specs", str(world["specs"])], env)
    assert done.code == 0, done.err
    assert done.max_rss_kib < 110 * 1024  # interpreter + boto3 is ~70 MiB; the 48 MiB object never is in memory
    md5 = hashlib.md5(big).hexdigest()
    assert ObjectCache(world["cache"] / "datasets").path(md5).stat().st_size == len(big)
