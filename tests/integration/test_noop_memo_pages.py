"""The no-op memo's listing (commands/noop_memo.py) on SeaweedFS: a recorded listing's pages asked all at once, kept
only while they chain, and whatever changed in the bucket is seen, through a proxy that counts the listing's
requests and holds their answers until as many are in flight as the test says."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from reconciler.cli import main
from reconciler.commands import noop_memo
from reconciler.commands import plan as plan_command
from reconciler.dev.seaweed import SeaweedServer
from reconciler.model import S3StoreSpec
from reconciler.stores.s3 import S3Store
from tests.faults.proxy import FaultProxy
from tests.integration.pixelenv import write_specs

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

GATE_TIMEOUT = 60.0  # bounds only a broken run: a passing one is let through by the k-th request
PAGE_KEYS = 4
FILES = 13  # four pages of four keys or fewer: f00-f03, f04-f07, f08-f11, f12


class CountingProxy(FaultProxy):
    """Forwards everything; counts ListObjectsV2 requests and, when `hold(k)` armed it, holds each listing's
    answer until k listing requests have arrived (or `GATE_TIMEOUT` passed, which it records as `timed_out`)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, [])
        self._count = threading.Lock()
        self.lists = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.timed_out = False
        self._gate: threading.Event | None = None
        self._needed = 0

    def hold(self, k: int) -> None:
        with self._count:
            self.lists = self.most_in_flight = 0
            self._needed, self._gate = k, threading.Event()
        with self.log.lock:
            self.log.lines.clear()

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        listing = method == "GET" and "list-type=2" in path
        if not listing:
            return super()._forward(method, path, headers, body)
        with self._count:
            self.lists += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            gate = self._gate
            if gate is not None and self.lists >= self._needed:
                gate.set()
        try:
            answer = super()._forward(method, path, headers, body)
            if gate is not None and not gate.wait(GATE_TIMEOUT):
                self.timed_out = True
                gate.set()  # the rest go through: the test fails on `timed_out`, not on a hang
            return answer
        finally:
            with self._count:
                self.in_flight -= 1


class World:
    def __init__(self, base: Path, seaweed: SeaweedServer, bucket: str, endpoint: str) -> None:
        self.root = base / "data"
        (self.root / "d").mkdir(parents=True)
        self.specs = base / "specs"
        self.bucket = bucket
        self.prefix = base.name
        self.env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(base / "cache"), "NO_COLOR": "1"}
        mapping = {"name": "m", "from": "disk:d", "to": f"s3:{self.prefix}/", "prune": True}
        write_specs(self.specs, endpoint=endpoint, bucket=bucket, root=self.root, mappings=[mapping])
        for i in range(FILES):
            (self.root / "d" / f"f{i:02}.bin").write_bytes(bytes([i]) * (i + 1))

    def run(self, args: list[str], *, memo: bool) -> tuple[int, str]:
        env = {**self.env, noop_memo.NO_MEMO_ENV: "" if memo else "1"}
        result = CliRunner().invoke(main, [args[0], "--specs", str(self.specs), *args[1:]], env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result.exit_code, result.stdout

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"


@pytest.fixture
def proxy(seaweed: SeaweedServer) -> Iterator[CountingProxy]:
    relay = CountingProxy(seaweed.endpoint)
    with relay:
        yield relay


@pytest.fixture
def world(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch
) -> World:
    """FILES files pushed, a memo recorded over a listing of PAGE_KEYS keys a page, the memo's clock past them."""
    monkeypatch.setattr(noop_memo, "page_keys", PAGE_KEYS, raising=False)
    built = World(tmp_path, seaweed, bucket, proxy.endpoint)
    assert built.run(["apply", "--auto-approve"], memo=False)[0] == 0
    later = max(p.stat().st_ctime_ns for p in (built.root / "d").iterdir()) + 10_000_000_000
    monkeypatch.setattr(noop_memo, "clock", lambda: later)
    assert built.run(["plan", "--detailed-exitcode"], memo=True) == (0, "No changes. Storage matches the specs.\n")
    return built


def refuse(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    def refused(*_: object, **__: object) -> object:
        raise AssertionError(f"the memo's plan reached {names}")

    for name in names:
        monkeypatch.setattr(plan_command, name, refused)


def test_a_hit_asks_every_recorded_page_at_once(
    world: World, proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    pages = -(-FILES // PAGE_KEYS)
    assert pages >= 3
    proxy.hold(pages)  # no page is answered before every page has been asked
    with monkeypatch.context() as patched:
        refuse(patched, "guarded_plan", "plan_workspace")
        assert world.run(["plan", "--detailed-exitcode"], memo=True)[0] == 0
    assert not proxy.timed_out, "the pages were asked one after another"
    assert (proxy.lists, proxy.most_in_flight) == (pages, pages)
    # Nothing goes ahead of the pages: no HeadBucket, no request but the pages and the encryption answer.
    assert sorted(line.split(" ", 1)[0] for line in proxy.log.lines) == ["GET"] * (pages + 1), proxy.log.lines


def _insert_middle(world: World, s3: S3Client) -> None:
    s3.put_object(Bucket=world.bucket, Key=world.key("f05a.bin"), Body=b"inside the second page")


def _delete_at_cut(world: World, s3: S3Client) -> None:
    s3.delete_object(Bucket=world.bucket, Key=world.key(f"f{PAGE_KEYS - 1:02}.bin"))


def _add_after_last(world: World, s3: S3Client) -> None:
    s3.put_object(Bucket=world.bucket, Key=world.key("zz.bin"), Body=b"after the last key")


def _overwrite(world: World, s3: S3Client) -> None:
    # Same size, other bytes: only the ETag tells.
    s3.put_object(Bucket=world.bucket, Key=world.key("f06.bin"), Body=b"\xee" * 7)


@pytest.mark.parametrize("change", [_insert_middle, _delete_at_cut, _add_after_last, _overwrite])
def test_any_change_in_the_bucket_misses_and_the_plan_shows_it(
    world: World, proxy: CountingProxy, seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch,
    change: Callable[[World, S3Client], None],
) -> None:
    change(world, seaweed.client())
    proxy.hold(-(-FILES // PAGE_KEYS))
    with monkeypatch.context() as patched:
        # The plan is made over the pages asked at once, chained and listed on where they stop chaining: a
        # listing from scratch (plan_workspace) would be the replay refusing a listing that is not whole.
        refuse(patched, "plan_workspace")
        with_memo = world.run(["plan", "--detailed-exitcode"], memo=True)
    assert not proxy.timed_out
    without = world.run(["plan", "--detailed-exitcode"], memo=False)
    assert with_memo == without
    assert with_memo[0] == 2, with_memo  # the change is a plan, never the memo's "No changes"


KEY_NAMES = st.sampled_from(["a", "a/x", "a/y", "a/y/z", "a b", "a0", "a+b", "b", "b/c", "c/", "c/d", "é", "z"])


@pytest.mark.slow
# No shrinking: each example is some dozens of requests to the server, and a few keys read well as they are.
@settings(
    max_examples=15, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    before=st.sets(KEY_NAMES, max_size=12), added=st.sets(KEY_NAMES, max_size=4),
    removed=st.sets(KEY_NAMES, max_size=4), page=st.integers(min_value=1, max_value=4),
)
# Found in CI (against `store.list`): a page ending at "b" once "b/c" is added.
@example(before={"b", "a/y/z"}, added={"a", "b/c"}, removed={"é"}, page=1)
def test_the_recorded_pages_chained_list_what_the_store_lists_whatever_changed(
    seaweed: SeaweedServer, bucket: str, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    before: set[str], added: set[str], removed: set[str], page: int,
) -> None:
    """The law: the memo's listing, asked at the cuts of a listing made before any change, is the store's."""
    monkeypatch.setattr(noop_memo, "page_keys", page, raising=False)
    client = seaweed.client()
    prefix = f"law-{uuid.uuid4().hex[:12]}/"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=prefix + k, Body=k.encode()), sorted(before)))
    spec = S3StoreSpec(name="s3", bucket=bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path")
    store = S3Store(spec)
    (recorded,) = noop_memo._listings([(store, prefix)], {})
    cuts = [listed.after for listed in recorded]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=prefix + k, Body=b"new " + k.encode()),
                      sorted(added)))
        list(pool.map(lambda k: client.delete_object(Bucket=bucket, Key=prefix + k), sorted(removed)))
    (listed,) = noop_memo._listings([(store, prefix)], {("s3", prefix): cuts})
    # What a listing from scratch, page after page at this page size, lists. Not `store.list` (pages of 1,000):
    # at a few keys a page SeaweedFS ends a listing early (keys a/y/z, b, b/c, one a page: "b" comes back not
    # truncated and b/c is never listed, boto3's paginator alike), and the memo promises the listing a plan would
    # make at its page size, not a better one.
    (fresh,) = noop_memo._listings([(store, prefix)], {})
    expected = [(e.key, e.size, e.etag) for e in noop_memo._Listed(store, {prefix: fresh}).list(prefix)]
    replayed = noop_memo._Listed(store, {prefix: listed})
    assert [(e.key, e.size, e.etag) for e in replayed.list(prefix)] == expected
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.delete_object(Bucket=bucket, Key=prefix + k), sorted(before | added)))
