"""The no-op memo (commands/noop_memo.py) on SeaweedFS: whatever changes between two plans, a plan answered
with the memo on prints and exits exactly as the full plan does; a memo is written only outside the racy window,
a corrupt one is ignored, specs with a training-data section never use one, and a hit plans nothing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from reconciler.cli import main
from reconciler.commands import noop_memo
from reconciler.dev.seaweed import SeaweedServer
from reconciler.model import S3StoreSpec
from reconciler.stores.s3 import S3Store
from tests.integration.pixelenv import write_specs

pytestmark = pytest.mark.integration

TIER = """\
tiers:
  processed:
    at: s3:processed/
    categories: [cot_reasoning]
"""

MUTATIONS = [
    "none", "same-size-same-mtime", "other-size", "touch", "delete", "new-file", "chmod", "s3-overwrite",
    "s3-delete", "s3-new", "spec-edit", "spec-rename", "env", "max-delete", "detailed-exitcode", "json",
]


class World:
    def __init__(self, base: Path, seaweed: SeaweedServer, bucket: str, *, extra: str = "") -> None:
        self.root = base / "data"
        (self.root / "d").mkdir(parents=True)
        self.specs = base / "specs"
        self.bucket = bucket
        self.seaweed = seaweed
        self.prefix = base.name
        self.env = {**seaweed.env(), "PIXEL_CACHE_DIR": str(base / "cache"), "MEMO_PREFIX": self.prefix,
                    "NO_COLOR": "1"}
        self.write_spec(exclude="", extra=extra)

    def write_spec(self, *, exclude: str, extra: str = "") -> None:
        mapping = {"name": "m", "from": "disk:d", "to": "'s3:${MEMO_PREFIX}/'", "prune": True,
                   "exclude": f"[{exclude}]"}
        write_specs(self.specs, endpoint=self.seaweed.endpoint, bucket=self.bucket, root=self.root,
                    mappings=[mapping])
        with (self.specs / "specs.yaml").open("a") as spec:
            spec.write(extra)

    def run(self, args: list[str], *, memo: bool) -> tuple[int, str]:
        env = {**self.env, noop_memo.NO_MEMO_ENV: "" if memo else "1"}
        result = CliRunner().invoke(main, [args[0], "--specs", str(self.specs), *args[1:]], env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result.exit_code, result.stdout

    def memos(self) -> list[Path]:
        return sorted((Path(self.env["PIXEL_CACHE_DIR"]) / "memo").glob("*.json"))


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Moves the memo's clock `seconds` past every file of the world, which is all made by now."""

    def move(seconds: int) -> None:
        now = time.time_ns() + seconds * 1_000_000_000
        monkeypatch.setattr(noop_memo, "clock", lambda: now)

    return move


def synced(base: Path, seaweed: SeaweedServer, bucket: str, *, extra: str = "") -> World:
    """Three files pushed by `pixel apply`: a world a plan finds nothing to do in."""
    world = World(base, seaweed, bucket, extra=extra)
    _world_files(world, [3, 4, 5])
    assert world.run(["apply", "--auto-approve"], memo=False)[0] == 0
    return world


def _world_files(world: World, sizes: list[int]) -> None:
    for i, size in enumerate(sizes):
        (world.root / "d" / f"f{i:02}.bin").write_bytes(bytes([i]) * size)


def _mutate(world: World, what: str, s3: Any, args: list[str]) -> list[str]:
    """Changes the world (or the command) as `what` says; the command to plan with after it."""
    first = world.root / "d" / "f00.bin"
    key = f"{world.prefix}/f00.bin"
    if what == "same-size-same-mtime":
        st_before = first.stat()
        first.write_bytes(b"\xff" * st_before.st_size)
        os.utime(first, ns=(st_before.st_atime_ns, st_before.st_mtime_ns))
    elif what == "other-size":
        first.write_bytes(b"longer than before" * 3)
    elif what == "touch":
        os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 5_000_000_000))
    elif what == "delete":
        first.unlink()
    elif what == "new-file":
        (world.root / "d" / "new.bin").write_bytes(b"new")
    elif what == "chmod":
        first.chmod(0o600)
    elif what == "s3-overwrite":
        s3.put_object(Bucket=world.bucket, Key=key, Body=b"\xee" * first.stat().st_size)
    elif what == "s3-delete":
        s3.delete_object(Bucket=world.bucket, Key=key)
    elif what == "s3-new":
        s3.put_object(Bucket=world.bucket, Key=f"{world.prefix}/only-in-s3.bin", Body=b"x")
    elif what == "spec-edit":
        world.write_spec(exclude="'f00.bin'")
    elif what == "spec-rename":  # the walk and listing as they were; the JSON names the mapping
        spec = world.specs / "specs.yaml"
        spec.write_text(spec.read_text().replace("name: m\n", "name: renamed\n"))
    elif what == "env":
        world.env["MEMO_PREFIX"] = world.prefix + "-elsewhere"
    elif what == "max-delete":
        return [*args, "--max-delete", "0"]
    elif what == "detailed-exitcode":
        return [a for a in args if a != "--detailed-exitcode"] if "--detailed-exitcode" in args else [
            *args, "--detailed-exitcode"]
    elif what == "json":
        return [*args, "--format", "json"]
    return args


@pytest.mark.slow
@pytest.mark.parametrize("what", MUTATIONS)  # each one met, on random worlds
# No shrinking: each example is a few plans against the server, and a world of 20 files reads well as it is.
@settings(
    max_examples=3, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sizes=st.lists(st.integers(min_value=0, max_value=64), min_size=3, max_size=20), detailed=st.booleans())
def test_a_memo_answers_exactly_as_the_full_plan_whatever_changed(
    tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedServer, bucket: str, later: Callable[[int], None],
    what: str, sizes: list[int], detailed: bool,
) -> None:
    world = World(tmp_path_factory.mktemp("w"), seaweed, bucket)
    _world_files(world, sizes)
    s3 = seaweed.client()
    assert world.run(["apply", "--auto-approve"], memo=False)[0] == 0
    later(10)
    args = ["plan", *(["--detailed-exitcode"] if detailed else [])]
    if what == "spec-rename":
        args += ["--format", "json"]
    recorded = world.run(args, memo=True)
    assert recorded[0] == 0 and len(world.memos()) == 1, recorded
    assert world.run(args, memo=True) == recorded  # the memo's answer
    args = _mutate(world, what, s3, args)
    later(20)  # past the window of any file the mutation wrote
    assert world.run(args, memo=True) == world.run(args, memo=False), what


def test_a_plan_after_apply_never_sees_the_memo_of_before(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, later: Callable[[int], None]
) -> None:
    world = synced(tmp_path, seaweed, bucket)
    later(10)
    assert world.run(["plan", "--detailed-exitcode"], memo=True)[0] == 0
    (world.root / "d" / "f01.bin").unlink()
    later(20)
    assert world.run(["plan", "--detailed-exitcode"], memo=True)[0] == 2
    assert world.run(["apply", "--auto-approve"], memo=True)[0] == 0  # S3 changes: the listing is another
    assert world.run(["plan", "--detailed-exitcode"], memo=True) == world.run(["plan", "--detailed-exitcode"],
                                                                               memo=False)
    seaweed.client().delete_object(Bucket=bucket, Key=f"{world.prefix}/f02.bin")
    assert world.run(["plan", "--detailed-exitcode"], memo=True)[0] == 2


def test_no_memo_is_written_inside_the_racy_window(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = synced(tmp_path, seaweed, bucket)
    newest = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in (world.root / "d").iterdir())
    # A rewrite within the same timestamp tick would leave every stat as it is: nothing is vouched for yet.
    monkeypatch.setattr(noop_memo, "clock", lambda: newest + 1_000_000_000)
    assert world.run(["plan"], memo=True)[0] == 0
    assert world.memos() == []
    monkeypatch.setattr(noop_memo, "clock", lambda: newest + 3_000_000_000)
    assert world.run(["plan"], memo=True)[0] == 0
    assert len(world.memos()) == 1


def test_a_corrupt_memo_is_ignored_and_written_again(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, later: Callable[[int], None]
) -> None:
    world = synced(tmp_path, seaweed, bucket)
    later(10)
    recorded = world.run(["plan", "--detailed-exitcode"], memo=True)
    (memo,) = world.memos()
    good = memo.read_bytes()
    assert b'"exit":0' in good
    for garbage in (b"{not json", b"[]", good[:40], good.replace(b'"exit":0', b'"exit":"0"'), b'{"format":1}'):
        memo.write_bytes(garbage)
        assert world.run(["plan", "--detailed-exitcode"], memo=True) == recorded
        assert memo.read_bytes() == good  # the full plan ran and wrote it again
    seaweed.client().delete_object(Bucket=bucket, Key=f"{world.prefix}/f02.bin")
    memo.write_bytes(good[:40])
    assert world.run(["plan", "--detailed-exitcode"], memo=True) == world.run(["plan", "--detailed-exitcode"],
                                                                               memo=False)


def test_specs_with_a_training_data_section_never_use_a_memo(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, later: Callable[[int], None]
) -> None:
    world = synced(tmp_path, seaweed, bucket, extra=TIER)
    later(10)
    assert world.run(["plan", "--detailed-exitcode"], memo=True)[0] == 0
    assert world.memos() == []


def test_a_hit_builds_no_listing_entries_asks_no_hash_cache_and_plans_nothing(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, later: Callable[[int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = synced(tmp_path, seaweed, bucket)
    later(10)
    recorded = world.run(["plan", "--detailed-exitcode"], memo=True)

    def refused(*_: object, **__: object) -> Iterator[None]:
        raise AssertionError("the memo's hit reached the full plan")

    from reconciler.commands import plan as plan_command
    from reconciler.observe.hashcache import CachedHasher, HashCache
    from reconciler.stores.s3.store import S3Store

    for owner, name in [
        (plan_command, "guarded_plan"), (plan_command, "plan_workspace"), (noop_memo, "page_of"),
        (S3Store, "entries_of"), (S3Store, "list"), (CachedHasher, "known_many"), (HashCache, "lookup_many"),
        (HashCache, "preload"),
    ]:
        monkeypatch.setattr(owner, name, refused)
    assert world.run(["plan", "--detailed-exitcode"], memo=True) == recorded
    # How many requests a plan keeps in flight changes no plan: the memo made at one parallelism answers another.
    assert world.run(["plan", "--detailed-exitcode", "--parallelism", "4"], memo=True) == recorded


@pytest.mark.slow
def test_the_memos_listing_replays_as_the_store_lists_over_pages_and_odd_keys(
    seaweed: SeaweedServer, bucket: str, aws_env: dict[str, str]
) -> None:
    odd = ["p/a", "p/a b", "p/a+b", "p/a%2F", "p/a/x", "p/ünï/código", "p/x&<y>.json", "p/.pixel-not-own"]
    keys = odd + [f"p/many/{i:05d}" for i in range(1_100)]  # two pages, the token followed once
    client = seaweed.client()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=key.encode()), keys))
    spec = S3StoreSpec(name="s3", bucket=bucket, endpoint=seaweed.endpoint, region="us-east-1", addressing_style="path")
    store = S3Store(spec)
    expected = [(e.key, e.size, e.md5, e.etag) for e in store.list("p/")]
    (pages,) = noop_memo._listings([(store, "p/")], {})
    assert len(pages) == 2
    replayed = noop_memo._Listed(store, {"p/": pages})
    assert [(e.key, e.size, e.md5, e.etag) for e in replayed.list_expecting("p/", [])] == expected
    assert replayed.all_md5s
    # Asked again at the cuts recorded, all at once: the same pages.
    assert noop_memo._listings([(store, "p/")], {("s3", "p/"): [page.after for page in pages]}) == [pages]
    # A listing that stops at a truncated page, or a page not asked where the one before ends, is refused,
    # never replayed as a shorter or another listing.
    moved = noop_memo.ListedPage(("ContinuationToken", "p/many/00500"), pages[1].body)
    for broken in (pages[:1], [pages[0], moved]):
        with pytest.raises(noop_memo.ReplayMismatch):
            list(noop_memo._Listed(store, {"p/": broken}).list("p/"))
