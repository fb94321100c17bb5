"""The "beyond one machine" rows: the Dask executor's overhead, and planning from an S3 Inventory report.

1. `n` small uploads and then `n` server-side copies of them, on SeaweedFS, once with the local
   executor (one process, `--parallelism` threads) and once on a `distributed.LocalCluster` of two
   worker processes (one thread each, `parallelism / 2` actions at once per batch: the same 16
   requests in flight). Both run the same Plan through the real runner; only the execution is
   timed. On one 2-core machine the cluster has nothing to gain: the figure is its overhead,
   reported as the ratio and as seconds per action.
2. Planning `n` objects (the 1M-object row's mapping, bench/million.py) from an inventory report
   (manifest.json + gzip CSV, in memory: read, parsed, observed, planned) against the same plan
   from a listing. The listing is the in-memory stand-in of bench/million.py plus what listing
   that many objects from SeaweedFS costs, measured on the objects of row 1 and scaled.

    python -m bench.scale [--actions 20000] [--objects 1000000] [--parallelism 16]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.apply.executor import LocalExecutor, NullReporter, PlanExecutor
from reconciler.dev.seaweed import SeaweedServer
from reconciler.model import (
    Action,
    ActionKind,
    Change,
    Desired,
    LocalStoreSpec,
    ObjectRef,
    Plan,
    Precondition,
    S3StoreSpec,
)
from reconciler.stores.base import Store
from reconciler.stores.factory import build_store


def _desired(server: SeaweedServer, bucket: str, root: Path) -> Desired:
    return Desired(
        stores={
            "s3": S3StoreSpec(
                name="s3",
                bucket=bucket,
                endpoint=server.endpoint,
                region="us-east-1",
                addressing_style="path",
                checksum="when_required",
            ),
            "disk": LocalStoreSpec(name="disk", root=str(root)),
        },
        mappings=(),
    )


def _files(root: Path, n: int) -> list[tuple[str, int, str]]:
    out = []
    for i in range(n):
        body = (f"{i:08d}" * 64).encode()  # 512 bytes
        rel = f"small/d{i % 50:02d}/f{i:06d}.bin"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        out.append((rel, len(body), hashlib.md5(body).hexdigest()))
    return out


def _uploads(files: list[tuple[str, int, str]]) -> Plan:
    actions = tuple(
        Action(
            f"upload:s3:up/{rel}",
            ActionKind.UPLOAD,
            Change.CREATE,
            "bench",
            ObjectRef("s3", f"up/{rel}"),
            "bench",
            source=ObjectRef("disk", rel),
            size=size,
            md5=md5,
            precondition=Precondition(target_absent=True),
        )
        for rel, size, md5 in files
    )
    return Plan(actions=actions, edges=())


def _copies(files: list[tuple[str, int, str]]) -> Plan:
    actions = tuple(
        Action(
            f"copy:s3:cp/{rel}",
            ActionKind.COPY,
            Change.CREATE,
            "bench",
            ObjectRef("s3", f"cp/{rel}"),
            "bench",
            source=ObjectRef("s3", f"up/{rel}"),
            size=size,
            md5=md5,
            precondition=Precondition(target_absent=True, source_etag=md5),
        )
        for rel, size, md5 in files
    )
    return Plan(actions=actions, edges=())


def _timed(executor: PlanExecutor, plan: Plan, desired: Desired, stores: dict[str, Store]) -> float:
    executor.check(plan, desired)
    start = time.perf_counter()
    result, _ = executor.run(plan, desired, stores, reporter=NullReporter(), stop=threading.Event())
    seconds = time.perf_counter() - start
    if not result.ok:
        raise AssertionError(f"{len(result.failed)} failed, e.g. {result.failed[0].error if result.failed else ''}")
    return seconds


@contextmanager
def _cluster(server: SeaweedServer) -> Iterator[str]:
    from distributed import LocalCluster

    os.environ.update(server.env())  # the workers find their credentials in their own environment
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    ) as cluster:
        yield str(cluster.scheduler_address)


def executor_rows(server: SeaweedServer, work: Path, n: int, parallelism: int) -> dict[str, Any]:
    from reconciler.apply.dask_executor import DaskExecutor

    root = work / "scale-data"
    files = _files(root, n)
    out: dict[str, Any] = {"actions": n, "parallelism": parallelism}
    with _cluster(server) as scheduler:
        for name in ("local", "dask"):
            bucket = server.create_bucket(f"bench-scale-{name}-{uuid.uuid4().hex[:6]}")
            desired = _desired(server, bucket, root)
            stores = {spec.name: build_store(spec, parallelism=parallelism) for spec in desired.stores.values()}
            for case, plan in (("uploads", _uploads(files)), ("copies", _copies(files))):
                executor: PlanExecutor = (
                    LocalExecutor(parallelism)
                    if name == "local"
                    # At least a few batches per worker, so a small check run uses both workers too.
                    else DaskExecutor(
                        scheduler, parallelism=max(1, parallelism // 2), max_actions=min(500, max(1, n // 8))
                    )
                )
                out.setdefault(case, {})[name] = round(_timed(executor, plan, desired, stores), 3)
            if name == "local":
                out["list_seconds"] = round(_list_seconds(stores["s3"], "up/"), 3)
            server.delete_bucket(bucket)
    for case in ("uploads", "copies"):
        row = out[case]
        row["ratio"] = round(row["dask"] / row["local"], 3)
        row["overhead_ms_per_action"] = round((row["dask"] - row["local"]) / n * 1000, 3)
    out["list_objects"] = n
    return out


def _list_seconds(store: Store, prefix: str) -> float:
    start = time.perf_counter()
    count = sum(1 for _ in store.list(prefix))
    assert count > 0
    return time.perf_counter() - start


def inventory_row(n: int, list_seconds_per_object: float) -> dict[str, Any]:
    """Observe + plan `n` objects from an inventory report vs from a listing (see the module doc)."""
    from bench import million
    from reconciler.dev.inventory_report import Row, render_report
    from reconciler.model import Authority, MappingSpec
    from reconciler.observe import observer
    from reconciler.observe.inventory import InventoryListing, newest_manifest, read_report
    from reconciler.plan.planner import plan
    from reconciler.stores.memory import MemoryStore

    changed = frozenset(range(0, n, 100))
    local = million._Listing("staging", n, changed, s3=False)
    listing = million._Listing("pixel-data", n, changed, s3=True)
    stamp = datetime.fromtimestamp(million.BASE_MTIME_NS // 10**9 + 3600, tz=UTC)
    rows = (Row(e.key, e.size, e.etag or "", stamp) for e in listing.list(million.S3_PREFIX))
    reports = MemoryStore("reports")
    for key, body in render_report("pixel-data", "reports", rows, created=datetime.now(UTC)).items():
        reports.put(key, body)
    desired = Desired(
        stores={
            "staging": LocalStoreSpec("staging", "/nonexistent"),
            "pixel-data": S3StoreSpec("pixel-data", "pixel-data"),
        },
        mappings=(
            MappingSpec(
                name="raw",
                local_store="staging",
                local_path=million.LOCAL_PATH,
                s3_store="pixel-data",
                s3_prefix=million.S3_PREFIX,
                include=("**/*.jsonl",),
                authority=Authority.LOCAL,
                prune=True,
            ),
        ),
    )

    def planned(s3: Store) -> tuple[float, int]:
        start = time.perf_counter()
        observed = observer.observe(desired, {"staging": local, "pixel-data": s3}, million._WarmCache())  # type: ignore[dict-item]
        actions = len(plan(desired, observed).actions)
        return time.perf_counter() - start, actions

    start = time.perf_counter()
    report = read_report(reports, newest_manifest(reports, "inventory", "pixel-data"), expected_bucket="pixel-data")
    read_seconds = time.perf_counter() - start
    from_report, report_actions = planned(InventoryListing(listing, report))  # type: ignore[arg-type]
    from_listing, listing_actions = planned(listing)  # type: ignore[arg-type]
    if report_actions != listing_actions:
        raise AssertionError(f"inventory plan has {report_actions} actions, listing plan {listing_actions}")
    return {
        "objects": n,
        "actions": report_actions,
        "inventory_read_seconds": round(read_seconds, 3),
        "inventory_seconds": round(read_seconds + from_report, 3),
        "listing_in_memory_seconds": round(from_listing, 3),
        "seaweed_list_seconds_estimated": round(list_seconds_per_object * n, 3),
        "listing_seconds_estimated": round(from_listing + list_seconds_per_object * n, 3),
    }


def run_scale(server: SeaweedServer, work: Path, *, actions: int, objects: int, parallelism: int) -> dict[str, Any]:
    rows = executor_rows(server, work, actions, parallelism)
    per_object = rows["list_seconds"] / rows["list_objects"]
    rows["inventory"] = inventory_row(objects, per_object) if objects else {}
    return rows


def table_lines(rows: dict[str, Any]) -> list[str]:
    lines = []
    for case, label in (("uploads", "small uploads"), ("copies", "server-side copies")):
        r = rows.get(case)
        if r:
            lines.append(
                f"| {rows['actions']:,} {label:<18} | local {r['local']:>7.2f} s | LocalCluster(2) {r['dask']:>7.2f} s "
                f"| ratio {r['ratio']:.2f} | overhead {r['overhead_ms_per_action']:+.3f} ms/action |"
            )
    inv = rows.get("inventory")
    if inv:
        lines.append(
            f"| plan {inv['objects']:,} objects | from inventory {inv['inventory_seconds']:.2f} s "
            f"(report read {inv['inventory_read_seconds']:.2f} s) "
            f"| from listing ~{inv['listing_seconds_estimated']:.2f} s "
            f"(in-memory {inv['listing_in_memory_seconds']:.2f} s + SeaweedFS listing scaled "
            f"{inv['seaweed_list_seconds_estimated']:.2f} s) |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=20_000)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / ".work")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    with SeaweedServer(volume_size_limit_mb=256) as server:
        rows = run_scale(server, args.work, actions=args.actions, objects=args.objects, parallelism=args.parallelism)
    print("\n".join(table_lines(rows)))
    print(json.dumps(rows, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
