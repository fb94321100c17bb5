"""The "1M-object plan" row: wall time and peak RSS per object of observing and planning a million objects.

One mapping (local `staging:raw` -> `pixel-data:datasets/gdrive/raw/`, authority local, prune true,
include `**/*.jsonl`) holds `n` files on both sides. Keys share prefixes the way the real bucket's do
(`datasets/gdrive/raw/cat{i % 100}/shard{i // 1000}/file{i}.jsonl`); a seeded random `changed`
fraction of the S3 objects holds other content (another md5), so the plan is about `n * changed`
updates and nothing else.

What runs, and what does not (so the numbers mean what they say):

- Observation is the real `reconciler.observe.observe` (listing, glob filtering, keys made relative,
  the hash pool, the per-mapping dicts, `observe_world`) and planning is the real
  `reconciler.plan.plan` with every pass.
- The two stores are in memory, but they are *listings*, not `MemoryStore`s: each `list()` is a
  generator that yields, in S3's sorted key order, exactly the `Entry` objects the real store would
  (`LocalStore`: md5 unknown, `etag` = the "size-mtime-ctime-inode-device" version token; `S3Store`: md5 from the ETag,
  `mtime_ns` from LastModified). A `MemoryStore` keeps every object's bytes, ETag and full key in
  its own dict, which the real disk and the real bucket do not cost pixel: measured once at
  n=200,000, two filled `MemoryStore`s alone held 680 B per object, more than the whole observation
  and plan above them. Counting that would measure the test double, not pixel. Generating the
  listings costs wall time as a real listing does; the child times it alone too (`listing_seconds`).
- Local md5s come from a stand-in for a warm hash cache (the md5 of the key, no file read, no
  SQLite). Hashing and the hash cache have their own benchmark rows; here every local file still
  goes through the observer's hash pool like a real one.
- Everything runs in a fresh child process, so `ru_maxrss` (the peak resident set, KiB on Linux)
  belongs to this measurement alone. Two per-object figures are reported, named for what they are:
  `rss_bytes_per_object` = (peak RSS - RSS after imports) / n, what the objects cost, and
  `peak_rss_bytes_per_object` = peak RSS / n, interpreter and imports included.

`--stream` runs the streaming planner instead (`pixel plan --scale stream`, reconciler/scale/): the
same stores and hasher, the observation and the plan spilled to SQLite in a temporary directory, and
with `--out FILE` the plan file written streamed (timed apart). It reports the spill's size on disk too.

`--stream --apply` then applies that plan file as `pixel apply --scale stream FILE` does, in a second
fresh child (so its peak RSS is the apply's alone): the file read into a spill, every saved-plan check,
the levels, the batches through the local executor's thread pool. The plan is every object changed
(`--changed 1`, so `n` uploads unless given). The stores are sinks: the source's `stat` answers the
version the plan expects and its `open` an empty stream, the target's `write` reads nothing, so the
figure is pixel's apply machinery and not a test double holding `n` objects' bytes.

`--real-cache` replaces the warm-cache stand-in with a real `CachedHasher` over a hash cache file seeded
(before the baseline) with every local file's row, the local listing answering for the files' identities
as `LocalStore` does: the cache's own memory is then measured, preloaded whole in memory, a directory at
a time with `--stream`.

`--tiers` adds the training-data sections whose passes run after release-local: a protected `processed`
tier, a dataset in it organised from one of the changed raw objects (its copy waits for that object's
upload in the same plan), and a dataset registry (so the record index and registry passes run). It adds
no inventory and no tier over the mapping's own prefix: observing those lists the whole bucket into
memory (`observe/world.py`), which would measure the observation, not the passes.

    python -m bench.million [--n N] [--changed F] [--seed S] [--real-cache] [--tiers]
                            [--stream [--out FILE] [--apply]]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from reconciler.model import Desired, Entry

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_N = 1_000_000
DEFAULT_CHANGED = 0.01
DEFAULT_SEED = 1
TARGET_BYTES_PER_OBJECT = 1024
TARGET_SECONDS = 20.0
STREAM_TARGET_PEAK_BYTES = int(1.5 * 2**30)  # issue 29: the whole process at 10^7 objects

LOCAL_PATH = "raw"
S3_PREFIX = "datasets/gdrive/raw/"
BASE_MTIME_NS = 1_700_000_000_000_000_000


def run_million(
    n: int = DEFAULT_N,
    changed: float = DEFAULT_CHANGED,
    seed: int = DEFAULT_SEED,
    *,
    stream: bool = False,
    out: Path | None = None,
    real_cache: bool = False,
    tiers: bool = False,
) -> dict[str, float]:
    """Observe and plan `n` objects in a fresh child process; its measurements.

    Keys: objects, actions, seconds (observe + plan), observe_seconds, plan_seconds, peak_rss_mib,
    baseline_rss_mib (after imports, before any object exists), rss_bytes_per_object
    ((peak - baseline) / n) and peak_rss_bytes_per_object (peak / n).
    """
    argv = [sys.executable, "-m", "bench.million", "--child", "--n", str(n), "--changed", repr(changed)]
    argv += ["--seed", str(seed)]
    if stream:
        argv.append("--stream")
    if out is not None:
        argv += ["--out", str(out)]
    if real_cache:
        argv.append("--real-cache")
    if tiers:
        argv.append("--tiers")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.million child exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"bench.million child printed no result: {done.stdout.strip()[-2000:]}")
    result: dict[str, float] = json.loads(lines[-1])
    return result


# --- the child ------------------------------------------------------------------------------------


def _rss_now() -> int:
    """Current resident set in bytes (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return _rss_peak()


def _rss_peak() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _sorted_indices(n: int) -> Iterator[int]:
    """Object numbers in the lexicographic order of their keys, as an S3 listing returns them.

    Within `cat{c}/shard{s}/file{i}.jsonl`, '/' and '.' sort before every digit, so the key order is
    the string order of c, then of s, then of i: no list of a million keys to sort.
    """
    shards = (n + 999) // 1000
    for c in sorted(range(min(n, 100)), key=str):
        for s in sorted(range(shards), key=str):
            first = s * 1000 + (c - s * 1000) % 100
            yield from sorted(range(first, min(n, s * 1000 + 1000), 100), key=str)


def _rel(i: int) -> str:
    return f"cat{i % 100}/shard{i // 1000}/file{i}.jsonl"


def _size(i: int) -> int:
    return 1_000 + (i * 7_919) % 250_000


def _content_md5(rel: str, version: int = 0) -> str:
    # The md5 of the object's content; content is a function of the key (and a version for changed ones).
    return hashlib.md5(f"{rel}#{version}".encode()).hexdigest()


LOCAL_INODES = 40_000_000  # inode numbers of a large ext4 volume's files
LOCAL_DEVICE = 64769


class _Listing:
    """A store that can only list: the real stores' `Entry` objects, generated in key order."""

    def __init__(self, name: str, n: int, changed: frozenset[int], *, s3: bool) -> None:
        self.name = name
        self._n = n
        self._changed = changed
        self._s3 = s3

    def list(self, prefix: str) -> Iterator[Entry]:
        base = S3_PREFIX if self._s3 else f"{LOCAL_PATH}/"
        if not (base.startswith(prefix) or prefix.startswith(base)):
            return
        for i in _sorted_indices(self._n):
            rel = _rel(i)
            key = base + rel
            if not key.startswith(prefix):
                continue
            size = _size(i)
            if self._s3:
                etag = _content_md5(rel, 1 if i in self._changed else 0)
                # S3Store.list: md5_from_etag(etag) lower-cases (a new string); LastModified in whole seconds.
                mtime_ns = int((BASE_MTIME_NS // 1_000_000_000 + 3_600 + i) * 1e9)
                yield Entry(key, size, etag.lower(), mtime_ns, etag)
            else:
                # LocalStore.list: md5 unknown until hashed, etag is the version token (stores.local.version_token).
                mtime_ns = BASE_MTIME_NS + i * 1_000_003
                version = f"{size}-{mtime_ns}-{mtime_ns + 17}-{LOCAL_INODES + i}-{LOCAL_DEVICE}"
                yield Entry(key, size, None, mtime_ns, version)

    def stat(self, key: str) -> Entry | None:
        return None


    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        raise NotImplementedError("a listing holds no bytes")

    def write(self, key: str, source: object, **kwargs: object) -> Entry:
        raise NotImplementedError("the benchmark only plans")

    def copy(self, src_key: str, dst_key: str, **kwargs: object) -> Entry:
        raise NotImplementedError("the benchmark only plans")

    def delete(self, key: str, **kwargs: object) -> None:
        raise NotImplementedError("the benchmark only plans")


class _Sink(_Listing):
    """`_Listing` that an apply can run against: stat answers the listed entry, writes read and keep nothing."""

    def stat(self, key: str) -> Entry | None:
        i = int(key.rsplit("/file", 1)[1].split(".", 1)[0])
        return next(e for e in self._entries(i, key))

    def _entries(self, i: int, key: str) -> Iterator[Entry]:
        size = _size(i)
        if self._s3:
            etag = _content_md5(_rel(i), 1 if i in self._changed else 0)
            yield Entry(key, size, etag, BASE_MTIME_NS, etag)
        else:
            mtime_ns = BASE_MTIME_NS + i * 1_000_003
            version = f"{size}-{mtime_ns}-{mtime_ns + 17}-{LOCAL_INODES + i}-{LOCAL_DEVICE}"
            yield Entry(key, size, None, mtime_ns, version)

    def open(self, key: str, **kwargs: object) -> AbstractContextManager[BinaryIO]:
        import contextlib
        import io

        return contextlib.nullcontext(io.BytesIO(b""))

    def write(self, key: str, source: object, **kwargs: object) -> Entry:
        with source() as stream:  # type: ignore[operator]
            stream.read(0)
        size = kwargs["size"]
        md5 = kwargs["md5"]
        assert isinstance(size, int) and isinstance(md5, str)
        return Entry(key, size, md5, BASE_MTIME_NS, md5)


class _CachedListing(_Listing):
    """The local `_Listing` as a `HoldsLocalFiles`: the walk's identities come from its version tokens."""

    root_path = "/nonexistent/staging"

    def file_path(self, key: str) -> str:
        return f"{self.root_path}/{key}"

    def walked_identity(self, entry: Entry) -> tuple[str, int, int, int, int, int] | None:
        size, mtime_ns, ctime_ns, ino, dev = map(int, (entry.etag or "").split("-"))
        return (self.file_path(entry.key), dev, ino, size, mtime_ns, ctime_ns)


def _seeded_cache(directory: Path, n: int) -> Path:
    """A hash cache file holding every local file's row, written from a generator (never a list of n rows)."""
    import sqlite3

    from reconciler.observe.hashcache import CACHE_FILE, HashCache

    db = directory / CACHE_FILE
    HashCache(db).close()  # the schema, as pixel creates it
    rows = (
        (
            f"{_CachedListing.root_path}/{LOCAL_PATH}/{_rel(i)}",
            LOCAL_DEVICE,
            LOCAL_INODES + i,
            _size(i),
            BASE_MTIME_NS + i * 1_000_003,
            BASE_MTIME_NS + i * 1_000_003 + 17,
            _content_md5(_rel(i)),
        )
        for i in range(n)
    )
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO hashes VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return db


def _hashed(hasher: object) -> int:
    """Files the hasher answered: the stand-in counts calls, a CachedHasher its hits and reads."""
    from reconciler.observe.hashcache import CachedHasher

    if isinstance(hasher, CachedHasher):
        return hasher.cache_hits + hasher.files_read
    assert isinstance(hasher, _WarmCache)
    return hasher.calls


class _WarmCache:
    """Hasher stand-in for a warm hash cache: every local file's md5 is already known."""

    def __init__(self) -> None:
        self.calls = 0

    def md5(self, store: object, entry: Entry) -> str:
        self.calls += 1
        return _content_md5(entry.key[len(LOCAL_PATH) + 1 :])

    def known(self, store: object, entry: Entry) -> str | None:
        return self.md5(store, entry)  # warm: every file is a cache hit


def _world(
    n: int, changed: float, seed: int, tiers: bool = False
) -> tuple[Desired, dict[str, _Listing], _WarmCache, int]:
    """The specs, the two listing stores, the warm-cache stand-in and how many objects changed."""
    import random

    from reconciler.model import Authority, LocalStoreSpec, MappingSpec, S3StoreSpec

    changed_set = frozenset(random.Random(seed).sample(range(n), round(n * changed)))
    desired = Desired(
        stores={
            "staging": LocalStoreSpec(name="staging", root="/nonexistent/staging"),
            "pixel-data": S3StoreSpec(name="pixel-data", bucket="pixel-data"),
        },
        mappings=(
            MappingSpec(
                name="raw",
                local_store="staging",
                local_path=LOCAL_PATH,
                s3_store="pixel-data",
                s3_prefix=S3_PREFIX,
                include=("**/*.jsonl",),
                authority=Authority.LOCAL,
                prune=True,
            ),
        ),
    )
    if tiers:
        desired = _with_training_data(desired, min(changed_set, default=0))
    stores = {
        "staging": _Listing("staging", n, changed_set, s3=False),
        "pixel-data": _Listing("pixel-data", n, changed_set, s3=True),
    }
    return desired, stores, _WarmCache(), len(changed_set)


def _with_training_data(desired: Desired, source: int) -> Desired:
    """`desired` with a protected tier, a dataset organised from object `source` into it, and a registry."""
    import dataclasses

    from reconciler.model import DatasetSpec, ObjectRef, TierSpec

    processed = "datasets/gdrive/processed/"
    dataset = DatasetSpec(
        name="first",
        tier="processed",
        category="cot_reasoning",
        format="jsonl",
        store="pixel-data",
        key=f"{processed}cot_reasoning/first.jsonl",
        source=ObjectRef("pixel-data", S3_PREFIX + _rel(source)),
    )
    return dataclasses.replace(
        desired,
        tiers=(TierSpec("processed", "pixel-data", processed, categories=("cot_reasoning",), protect=True),),
        datasets=(dataset,),
        registry=ObjectRef("staging", "ai/data/dataset_registry.json"),
    )


def _with_real_cache(
    n: int, stores: dict[str, _Listing], directory: Path
) -> tuple[dict[str, _Listing], object]:
    from reconciler.observe.hashcache import CachedHasher, HashCache

    local = stores["staging"]
    cached = _CachedListing(local.name, n, local._changed, s3=False)
    return {**stores, "staging": cached}, CachedHasher(HashCache(_seeded_cache(directory, n)))


def _close(hasher: object) -> None:
    """A CachedHasher's close (flush and forget_vanished) is part of the observation it measures."""
    from reconciler.observe.hashcache import CachedHasher

    if isinstance(hasher, CachedHasher):
        hasher.close()


def _child(n: int, changed: float, seed: int, real_cache: bool = False, tiers: bool = False) -> dict[str, float]:
    import gc
    import tempfile

    from reconciler.observe import observer
    from reconciler.plan.planner import plan

    # Made before the baseline: the changed set is the benchmark's input, not the planner's cost.
    desired, stores, stand_in, changed_count = _world(n, changed, seed, tiers)
    hasher: object = stand_in
    cache_dir = tempfile.TemporaryDirectory(prefix="pixel-million-cache-")
    if real_cache:
        stores, hasher = _with_real_cache(n, stores, Path(cache_dir.name))
    gc.collect()
    baseline = max(_rss_now(), 1)

    cpu = time.process_time()
    start = time.perf_counter()
    observed = observer.observe(desired, stores, hasher)  # type: ignore[arg-type]
    _close(hasher)
    observed_at = time.perf_counter()
    result = plan(desired, observed)
    planned_at = time.perf_counter()
    cpu = time.process_time() - cpu

    peak = _rss_peak()
    # The stand-in stores' own share of observe_seconds: their listings generated and dropped.
    listing = time.perf_counter()
    for store, prefix in ((stores["staging"], f"{LOCAL_PATH}/"), (stores["pixel-data"], S3_PREFIX)):
        for _ in store.list(prefix):
            pass
    listing = time.perf_counter() - listing
    obs = observed.mappings["raw"]
    if len(obs.local) != n or len(obs.remote) != n or _hashed(hasher) != n:
        raise AssertionError(f"observed {len(obs.local)} local / {len(obs.remote)} remote, hashed {_hashed(hasher)}")
    cache_dir.cleanup()
    return {
        "objects": n,
        "changed": changed_count,
        "actions": len(result.actions),
        "findings": len(result.findings),
        "seconds": round(planned_at - start, 3),
        "observe_seconds": round(observed_at - start, 3),
        "plan_seconds": round(planned_at - observed_at, 3),
        "listing_seconds": round(listing, 3),  # part of observe_seconds: the stand-in stores generating entries
        "cpu_seconds": round(cpu, 3),  # all threads; well below `seconds` means the machine was busy
        "peak_rss_mib": round(peak / 2**20, 1),
        "baseline_rss_mib": round(baseline / 2**20, 1),
        "rss_bytes_per_object": round((peak - baseline) / n, 1),
        "peak_rss_bytes_per_object": round(peak / n, 1),
    }


def _stream_child(
    n: int, changed: float, seed: int, out: str | None, real_cache: bool = False, tiers: bool = False
) -> dict[str, float]:
    """`_child` through the streaming planner: observation and plan spilled to SQLite, the plan file streamed."""
    import gc
    import tempfile

    from reconciler.scale.observe import observe_spilled
    from reconciler.scale.planfile import write_streamed
    from reconciler.scale.planner import stream_plan
    from reconciler.scale.spill import Spill

    desired, stores, stand_in, changed_count = _world(n, changed, seed, tiers)
    hasher: object = stand_in
    cache_dir = tempfile.TemporaryDirectory(prefix="pixel-million-cache-")
    if real_cache:
        stores, hasher = _with_real_cache(n, stores, Path(cache_dir.name))
    gc.collect()
    baseline = max(_rss_now(), 1)
    with tempfile.TemporaryDirectory(prefix="pixel-million-") as tmp, Spill(Path(tmp)) as spill:
        cpu = time.process_time()
        start = time.perf_counter()
        observed = observe_spilled(desired, stores, hasher, spill)  # type: ignore[arg-type]
        _close(hasher)
        observed_at = time.perf_counter()
        result = stream_plan(desired, observed, spill)
        planned_at = time.perf_counter()
        if out is not None:
            write_streamed(result, Path(out))
        written_at = time.perf_counter()
        cpu = time.process_time() - cpu
        peak = _rss_peak()
        spill_bytes = sum(f.stat().st_size for f in spill.directory.iterdir())
        obs = observed.mappings["raw"]
        if len(obs.local) != n or len(obs.remote) != n or _hashed(hasher) != n:
            raise AssertionError(
                f"observed {len(obs.local)} local / {len(obs.remote)} remote, hashed {_hashed(hasher)}"
            )
        actions, findings = result.actions_count, result.findings_count
    cache_dir.cleanup()
    return {
        "objects": n,
        "changed": changed_count,
        "actions": actions,
        "findings": findings,
        "seconds": round(planned_at - start, 3),
        "observe_seconds": round(observed_at - start, 3),
        "plan_seconds": round(planned_at - observed_at, 3),
        "write_seconds": round(written_at - planned_at, 3),  # the plan file, when --out is given
        "cpu_seconds": round(cpu, 3),
        "peak_rss_mib": round(peak / 2**20, 1),
        "baseline_rss_mib": round(baseline / 2**20, 1),
        "rss_bytes_per_object": round((peak - baseline) / n, 1),
        "peak_rss_bytes_per_object": round(peak / n, 1),
        "spill_bytes_per_object": round(spill_bytes / n, 1),
    }


def _apply_child(n: int, changed: float, seed: int, plan_file: str) -> dict[str, float]:
    """`pixel apply --scale stream FILE`'s work on the plan `_stream_child` wrote, against sink stores."""
    import gc
    import tempfile
    import threading

    from reconciler.apply.executor import LocalExecutor, NullReporter
    from reconciler.scale import apply as streamed_apply
    from reconciler.scale.reader import read_into
    from reconciler.scale.spill import Spill

    desired, listings, _, _ = _world(n, changed, seed)
    changed_set = listings["staging"]._changed
    stores = {
        "staging": _Sink("staging", n, changed_set, s3=False),
        "pixel-data": _Sink("pixel-data", n, changed_set, s3=True),
    }
    gc.collect()
    baseline = max(_rss_now(), 1)
    with tempfile.TemporaryDirectory(prefix="pixel-million-apply-") as tmp, Spill(Path(tmp)) as spill:
        start = time.perf_counter()
        streamed = read_into(Path(plan_file), spill)
        read_at = time.perf_counter()
        streamed_apply.check(desired, streamed, streamed.limits, plan_file=plan_file)
        checked_at = time.perf_counter()
        result = streamed_apply.run_levels(
            streamed, desired, stores, LocalExecutor(8), reporter=NullReporter(), stop=threading.Event()
        )
        applied_at = time.perf_counter()
        peak = _rss_peak()
        if not result.ok or result.done != streamed.actions_count:
            raise AssertionError(f"applied {result.done} of {streamed.actions_count}: {result.failed[:3]}")
    return {
        "objects": n,
        "actions": result.done,
        "read_seconds": round(read_at - start, 3),
        "check_seconds": round(checked_at - read_at, 3),
        "apply_seconds": round(applied_at - checked_at, 3),
        "peak_rss_mib": round(peak / 2**20, 1),
        "baseline_rss_mib": round(baseline / 2**20, 1),
        "rss_bytes_per_action": round((peak - baseline) / max(1, result.done), 1),
    }


def run_apply(n: int, seed: int = DEFAULT_SEED) -> dict[str, float]:
    """Plan `n` changed objects to a file (one child), apply it streamed (another); the apply's measurements."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pixel-million-plan-") as tmp:
        plan_file = Path(tmp) / "plan.json"
        planned = run_million(n, 1.0, seed, stream=True, out=plan_file)
        argv = [sys.executable, "-m", "bench.million", "--child", "--n", str(n), "--changed", "1.0"]
        argv += ["--seed", str(seed), "--stream", "--apply", "--out", str(plan_file)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"bench.million apply child exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        result: dict[str, float] = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
        result["plan_file_bytes_per_action"] = round(plan_file.stat().st_size / max(1, planned["actions"]), 1)
    return result


def _show_apply(result: dict[str, float]) -> str:
    return "\n".join(
        [
            f"streamed apply: {int(result['actions']):,} actions from a saved plan file",
            f"  wall      read {result['read_seconds']:.2f} s + check {result['check_seconds']:.2f} s"
            f" + apply {result['apply_seconds']:.2f} s",
            f"  peak RSS  {result['peak_rss_mib']:.1f} MiB  (after imports {result['baseline_rss_mib']:.1f} MiB);"
            f" {result['rss_bytes_per_action']:.0f} B per action above the baseline",
        ]
    )


def _show(result: dict[str, float]) -> str:
    n = int(result["objects"])
    per = result["rss_bytes_per_object"]
    ok = per <= TARGET_BYTES_PER_OBJECT and result["seconds"] <= TARGET_SECONDS * n / DEFAULT_N
    return "\n".join(
        [
            f"1M-object plan: {n:,} objects, {int(result['changed']):,} changed -> {int(result['actions']):,} actions",
            f"  wall      {result['seconds']:.2f} s  (observe {result['observe_seconds']:.2f} s"
            f" + plan {result['plan_seconds']:.2f} s; {result['cpu_seconds']:.2f} s of CPU)",
            f"            of which {result['listing_seconds']:.2f} s is the stand-in stores generating their listings",
            f"  peak RSS  {result['peak_rss_mib']:.1f} MiB  (after imports {result['baseline_rss_mib']:.1f} MiB)",
            f"  per object  {per:.0f} B above the post-import baseline,"
            f" {result['peak_rss_bytes_per_object']:.0f} B of the whole peak",
            f"  target    <= {TARGET_BYTES_PER_OBJECT} B/object and <= {TARGET_SECONDS:.0f} s per million:"
            f" {'met' if ok else 'NOT met'}",
        ]
    )


def _show_stream(result: dict[str, float]) -> str:
    n = int(result["objects"])
    peak = result["peak_rss_mib"] * 2**20
    return "\n".join(
        [
            f"streamed plan: {n:,} objects, {int(result['changed']):,} changed -> {int(result['actions']):,} actions",
            f"  wall      {result['seconds']:.2f} s  (observe into the spill {result['observe_seconds']:.2f} s"
            f" + plan {result['plan_seconds']:.2f} s; {result['cpu_seconds']:.2f} s of CPU)"
            f"; plan file {result['write_seconds']:.2f} s",
            f"  peak RSS  {result['peak_rss_mib']:.1f} MiB  (after imports {result['baseline_rss_mib']:.1f} MiB)",
            f"  per object  {result['rss_bytes_per_object']:.0f} B above the post-import baseline;"
            f" spill on disk {result['spill_bytes_per_object']:.0f} B",
            f"  target    peak <= {STREAM_TARGET_PEAK_BYTES / 2**30:.1f} GiB at up to 10^7 objects:"
            f" {'met' if peak <= STREAM_TARGET_PEAK_BYTES or n > 10**7 else 'NOT met'}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.million", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="objects on each side (default 1,000,000)")
    parser.add_argument("--changed", type=float, default=DEFAULT_CHANGED, help="fraction whose md5 differs")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    parser.add_argument("--stream", action="store_true", help="the streaming planner (pixel plan --scale stream)")
    parser.add_argument("--out", type=Path, help="with --stream: also write the plan file here (timed apart)")
    parser.add_argument("--apply", action="store_true", help="with --stream: apply the plan streamed, measured apart")
    parser.add_argument("--real-cache", action="store_true", help="a real hash cache file, seeded warm")
    parser.add_argument("--tiers", action="store_true", help="a tier, a dataset and a registry: the later passes run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.out is not None and not args.stream:
        parser.error("--out needs --stream")
    if args.apply and not args.stream:
        parser.error("--apply needs --stream")
    if (args.real_cache or args.tiers) and args.apply:
        parser.error("--real-cache and --tiers measure planning; --apply reads a plan file")
    if args.child and args.apply:
        print(json.dumps(_apply_child(args.n, args.changed, args.seed, str(args.out))), flush=True)
        return 0
    if args.apply:
        applied = run_apply(args.n, args.seed)
        print(json.dumps(applied) if args.json else _show_apply(applied))
        return 0
    if args.child:
        out = None if args.out is None else str(args.out)
        found = (
            _stream_child(args.n, args.changed, args.seed, out, args.real_cache, args.tiers)
            if args.stream
            else _child(args.n, args.changed, args.seed, args.real_cache, args.tiers)
        )
        print(json.dumps(found), flush=True)
        return 0
    result = run_million(
        args.n, args.changed, args.seed, stream=args.stream, out=args.out, real_cache=args.real_cache, tiers=args.tiers
    )
    shown = _show_stream(result) if args.stream else _show(result)
    print(json.dumps(result) if args.json else shown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
