"""Apply writes each registered dataset's record index beside it in S3; the loader reads it instead of counting.

On SeaweedFS, through a proxy that counts what the readers download: the plan
shows the index nodes, apply writes them (and the registry vouches for each
by its md5), a second plan is clean, four ranks of a fresh job open the
dataset without one of them reading the whole object, an index edited in S3 is
not trusted, and an object that changed gets a new index at the next apply.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.loader import dataset as dataset_module
from reconciler.loader import index
from reconciler.loader.cache import ObjectCache
from reconciler.loader.dataset import StreamingDataset
from reconciler.loader.formats import RecordFormat
from reconciler.loader.resolve import resolve
from reconciler.loader.storeset import StoreSet
from reconciler.manifests import record_index
from reconciler.spec import load_desired
from tests.faults.proxy import FaultProxy
from tests.integration.test_loader import PROCESSED, RAW, write_world_specs
from tests.integration.test_loader_ranks import RECORDS, SPAN, big_body

pytestmark = pytest.mark.integration

CANONICAL = f"{PROCESSED}cot_reasoning/clinical_cot.jsonl"
SOURCE = f"{RAW}organise/clinical_cot.jsonl"


class ObjectProxy(FaultProxy):
    """Forwards everything; records the body size of every GET of one key (the data object): its readers."""

    def __init__(self, upstream: str, key: str) -> None:
        super().__init__(upstream, [])
        self.key = key
        self.reads: list[int] = []
        self._count = threading.Lock()

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        answer = super()._forward(method, path, headers, body)
        if method == "GET" and path.split("?")[0].endswith("/" + self.key):
            with self._count:
                self.reads.append(len(answer.partition(b"\r\n\r\n")[2]))
        return answer


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def world(tmp_path: Path, seaweed: Any, bucket: str, aws_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    client = seaweed.client()
    body = big_body()
    client.put_object(Bucket=bucket, Key=SOURCE, Body=body, Metadata={"md5": md5(body)})
    proxy = ObjectProxy(seaweed.endpoint, CANONICAL)
    # Spans in proportion (80 of this 5 MiB object, as of a 320 MiB one), in the apply and the loader alike.
    with proxy, mock.patch.object(index, "SPAN_BYTES", SPAN):
        specs = write_world_specs(tmp_path / "specs", endpoint=proxy.endpoint, bucket=bucket)
        env = {**aws_env, "PIXEL_CACHE_DIR": str(tmp_path / "cache"), "NO_COLOR": "1"}
        yield {"specs": specs, "env": env, "client": client, "bucket": bucket, "body": body, "proxy": proxy,
               "tmp": tmp_path}


def cli(world: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(main, [args[0], "--specs", str(world["specs"]), *args[1:]], env=world["env"])


def index_key(body: bytes, fmt: str = "jsonl") -> str:
    return record_index.index_key(md5(body), fmt)


def registry(world: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((world["specs"] / "work" / "registry.json").read_text())
    return document


def open_ranks(world: dict[str, Any], count: int) -> list[StreamingDataset]:
    """`count` ranks of a fresh job, as on `count` machines: nothing cached, no index directory shared."""
    desired = load_desired(world["specs"], {})
    stores = StoreSet(desired.stores)
    objects = resolve(desired, stores, "clinical_cot").objects
    return [
        StreamingDataset(objects, stores, rank=r, world_size=count, index_dir=world["tmp"] / f"indexes-{r}",
                         worker_info=lambda: None)
        for r in range(count)
    ]


def applied(world: dict[str, Any]) -> None:
    result = cli(world, "apply", "--auto-approve")
    assert result.exit_code == 0, result.output


def test_plan_shows_each_index_apply_writes_it_and_a_second_plan_is_clean(world: dict[str, Any]) -> None:
    body, client, bucket = world["body"], world["client"], world["bucket"]
    planned = cli(world, "plan", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert index_key(body) in planned.output  # its own line, in the plan a reviewer reads
    applied(world)
    written = client.get_object(Bucket=bucket, Key=index_key(body))["Body"].read()
    built = index.build(io.BytesIO(body), key=CANONICAL, fmt=RecordFormat.JSONL, split=True)
    assert json.loads(written) == built.to_json()  # the loader's own format, from the verified bytes
    assert len(built.spans) > 40
    entry = registry(world)["datasets"]["clinical_cot"]
    assert entry["record_index"] == {"s3_path": f"s3://{bucket}/{index_key(body)}", "md5": md5(written)}
    again = cli(world, "plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_four_ranks_after_apply_read_the_index_and_none_reads_the_whole_object(world: dict[str, Any]) -> None:
    applied(world)
    proxy, size = world["proxy"], len(world["body"])
    proxy.reads.clear()
    world_size = 4
    parts = []
    for rank in open_ranks(world, world_size):
        assert len(rank) == RECORDS // world_size  # known before the first record, from the index
        parts.append([r["id"] for r in rank])
    assert Counter(i for p in parts for i in p) == Counter(range(RECORDS))
    # Each rank reads its run of spans in one GET: a quarter of the object, rounded out to whole spans.
    spans = index.build(io.BytesIO(world["body"]), key=CANONICAL, fmt=RecordFormat.JSONL, split=True).spans
    share = size / world_size + 2 * max(span.stop - span.start for span in spans)
    assert proxy.reads and max(proxy.reads) <= share < size / 2, "a rank read the whole object to count it"
    print(f"\n4 ranks after apply read {sum(proxy.reads)} bytes of a {size}-byte object in {len(proxy.reads)} GETs "
          f"(largest {max(proxy.reads)}): {sum(proxy.reads) / size:.3f}x")
    assert sum(proxy.reads) <= 1.1 * size


def test_an_index_edited_in_s3_is_not_trusted(world: dict[str, Any]) -> None:
    applied(world)
    body, client, bucket = world["body"], world["client"], world["bucket"]
    document = json.loads(client.get_object(Bucket=bucket, Key=index_key(body))["Body"].read())
    document["records"] -= 1  # consistent on its own: the last span one record short
    document["spans"][-1][3] -= 1
    tampered = json.dumps(document).encode()
    client.put_object(Bucket=bucket, Key=index_key(body), Body=tampered, Metadata={"md5": md5(tampered)})
    warnings: list[dict[str, Any]] = []

    class Recorder:
        def warning(self, event: str, **fields: Any) -> None:
            warnings.append({"event": event, **fields})

        def info(self, event: str, **fields: Any) -> None:
            pass

    with mock.patch.object(dataset_module, "get_logger", lambda name: Recorder()):
        (rank,) = open_ranks(world, 1)
        assert len(rank) == RECORDS  # counted from the object itself
    assert [w["event"] for w in warnings] == ["record index not used; counting the object's records instead"]
    assert "the registry records" in warnings[0]["reason"]
    assert max(world["proxy"].reads) == len(body)


def test_an_object_that_changed_gets_a_new_index_at_the_next_apply(world: dict[str, Any]) -> None:
    applied(world)
    body, client, bucket = world["body"], world["client"], world["bucket"]
    changed = body + b'{"id": 20000, "text": "one more"}\n'
    client.put_object(Bucket=bucket, Key=SOURCE, Body=changed, Metadata={"md5": md5(changed)})
    planned = cli(world, "plan")
    assert index_key(changed) in planned.output and index_key(body) not in planned.output
    applied(world)
    written = client.get_object(Bucket=bucket, Key=index_key(changed))["Body"].read()
    assert json.loads(written)["records"] == RECORDS + 1 and json.loads(written)["md5"] == md5(changed)
    assert registry(world)["datasets"]["clinical_cot"]["record_index"]["md5"] == md5(written)
    client.head_object(Bucket=bucket, Key=index_key(body))  # the old one stays: it is never wrong, only unused
    world["proxy"].reads.clear()
    (rank,) = open_ranks(world, 1)
    assert len(rank) == RECORDS + 1
    assert not world["proxy"].reads  # counted from the new index: the object is not read to count it
    assert cli(world, "plan", "--detailed-exitcode").exit_code == 0


def test_an_index_of_the_old_format_is_not_read_and_the_next_apply_writes_the_new_one(world: dict[str, Any]) -> None:
    """Version 1 (spans cut after the line reaching 4 MiB, md5s only) at its old key, vouched for by the registry
    as an older pixel left it: the loader counts the object rather than deal units another loader would cut
    otherwise; the plan writes the index of this version at its own key, then is clean."""
    applied(world)
    body, client, bucket = world["body"], world["client"], world["bucket"]
    client.delete_object(Bucket=bucket, Key=index_key(body))
    old_key = f"{record_index.INDEX_PREFIX}{md5(body)}.jsonl.json"
    old = json.dumps({"version": 1, "md5": md5(body), "size": len(body), "records": RECORDS,
                      "spans": [[0, len(body), 0, RECORDS, md5(body)]]}).encode()
    client.put_object(Bucket=bucket, Key=old_key, Body=old, Metadata={"md5": md5(old)})
    path = world["specs"] / "work" / "registry.json"
    document = registry(world)
    document["datasets"]["clinical_cot"]["record_index"] = {"md5": md5(old), "s3_path": f"s3://{bucket}/{old_key}"}
    path.write_text(json.dumps(document, indent=2))
    world["proxy"].reads.clear()
    (rank,) = open_ranks(world, 1)
    assert len(rank) == RECORDS and world["proxy"].reads == [len(body)]  # counted: the old index is not used
    planned = cli(world, "plan")
    assert index_key(body) in planned.output and old_key not in planned.output, planned.output
    applied(world)
    written = client.get_object(Bucket=bucket, Key=index_key(body))["Body"].read()
    assert json.loads(written)["version"] == record_index.INDEX_VERSION
    assert registry(world)["datasets"]["clinical_cot"]["record_index"] == {
        "md5": md5(written), "s3_path": f"s3://{bucket}/{index_key(body)}"}
    assert cli(world, "plan", "--detailed-exitcode").exit_code == 0
    world["proxy"].reads.clear()
    (rank,) = open_ranks(world, 1)
    assert len(rank) == RECORDS and not world["proxy"].reads  # the new index, not the object


def test_an_index_planted_before_the_first_apply_is_checked_and_never_recorded(world: dict[str, Any]) -> None:
    body, client, bucket = world["body"], world["client"], world["bucket"]
    client.put_object(Bucket=bucket, Key=SOURCE.replace(RAW, PROCESSED).replace("organise", "cot_reasoning"),
                      Body=body, Metadata={"md5": md5(body)})  # organised already: nothing else to do but index
    planted = json.dumps({"version": 1, "md5": md5(body), "size": len(body), "records": 4, "spans": []}).encode()
    client.put_object(Bucket=bucket, Key=index_key(body), Body=planted, Metadata={"md5": md5(planted)})
    planned = cli(world, "plan")
    assert "the registry does not vouch for it" in planned.output, planned.output
    result = cli(world, "apply", "--auto-approve")
    assert result.exit_code != 0 and "did not build from these bytes" in result.output, result.output
    written = world["specs"] / "work" / "registry.json"  # waits for the index: not written at all this time
    assert not written.exists() or "record_index" not in registry(world)["datasets"]["clinical_cot"]
    assert client.get_object(Bucket=bucket, Key=index_key(body))["Body"].read() == planted  # left as it is
    (rank,) = open_ranks(world, 1)
    assert len(rank) == RECORDS


class ReadCounting:
    """A store whose reads of one key are counted as the reader takes them: how far into the object it is."""

    def __init__(self, inner: Any, key: str) -> None:
        self._inner = inner
        self.key = key
        self.read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextlib.contextmanager
    def open(self, key: str, **kwargs: Any) -> Iterator[Any]:
        with self._inner.open(key, **kwargs) as stream:
            yield self._Counted(stream, self) if key == self.key else stream

    class _Counted(io.RawIOBase):
        def __init__(self, stream: Any, owner: ReadCounting) -> None:
            self._stream, self._owner = stream, owner

        def readable(self) -> bool:
            return True

        def read(self, n: int | None = -1) -> bytes:
            data: bytes = self._stream.read(n)
            self._owner.read += len(data)
            return data


def test_a_lone_reader_after_apply_yields_its_first_record_before_it_has_read_the_object(
    world: dict[str, Any],
) -> None:
    """One consumer of a fresh job (nothing cached, no index kept): apply's published index lets it hand on
    each span once verified, so its first record comes a few spans into the object, not after all of it."""
    applied(world)
    desired = load_desired(world["specs"], {})
    stores = StoreSet(desired.stores)
    objects = resolve(desired, stores, "clinical_cot").objects
    counting = ReadCounting(stores[objects[0].store], CANONICAL)
    ds = StreamingDataset(objects, {objects[0].store: counting}, cache=ObjectCache(world["tmp"] / "lone-cache"),
                          index_dir=world["tmp"] / "lone-indexes", worker_info=lambda: None)
    records = iter(ds)
    assert next(records)["id"] == 0
    size = len(world["body"])
    # The stream runs at most a few spans of 64 KiB ahead: the span decoded, two handed over, one being hashed,
    # two downloaded ahead of it and one being read (as test_loader_ranks' lone reader).
    assert counting.read <= 8 * SPAN < size, f"{counting.read} of {size} bytes read before the first record"
    assert [r["id"] for r in records] == list(range(1, RECORDS))
    assert counting.read == size  # read once, by one GET
    assert ObjectCache(world["tmp"] / "lone-cache").has(md5(world["body"]))  # and kept, verified whole
