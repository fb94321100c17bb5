"""The cases beside the main tree: far-away endpoint, saved plans, big files, a 10,000,000-object plan.

Each returns {case: {metric: value}} for one run; `__main__` repeats them and reports min/median/max.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench import dataset
from bench.latency import LatencyRelay
from bench.measure import run
from bench.tools import Pixel, Rclone, Target
from reconciler.dev.seaweed import SeaweedServer
from reconciler.observe.hashcache import RACY_WINDOW_NS

HERE = Path(__file__).resolve().parent
PARALLELISM = (1, 4, 16)  # pixel --parallelism for the far-away no-op: listing time should fall with it


def _target(server: SeaweedServer, root: Path, src: Path, slug: str, endpoint: str | None = None) -> Target:
    bucket = server.create_bucket(f"bench-{slug}-{uuid.uuid4().hex[:6]}")
    return Target(
        src=src,
        bucket=bucket,
        prefix="bench/data/",
        endpoint=endpoint or server.endpoint,
        env=server.child_env(),
        work=root,
    )


def latency(server: SeaweedServer, work: Path, small: int, *, delay: float = 0.025) -> dict[str, Any]:
    """Warm no-op of `small` small files with `delay` added each way: pixel at several parallelisms, rclone check."""
    root = work / f"latency-{small}"
    shutil.rmtree(root, ignore_errors=True)
    src = root / "data"
    src.mkdir(parents=True)
    dataset.generate(src, dataset.Shape(small_files=small, dirs=max(1, small // 100), big_files=0))
    pixel, out = Pixel(), {}
    near = _target(server, root / "near", src, f"lat{small}")
    (root / "near").mkdir(parents=True)
    try:
        pixel.upload(near)  # on loopback: the far-away part is the no-op's
        with LatencyRelay(server.port, delay=delay) as relay:
            far = Target(near.src, near.bucket, near.prefix, relay.endpoint, near.env, root / "far")
            far.work.mkdir(parents=True)
            pixel.noop(far, cold=False)  # fills the hash cache
            for parallelism in PARALLELISM:
                measured = pixel.noop(far, cold=False, extra=("--parallelism", str(parallelism)))
                out[f"latency_{small}_pixel_p{parallelism}"] = {
                    "seconds": measured.seconds,
                    "rss_mib": measured.peak_rss_mib,
                }
            rclone = Rclone()
            if rclone.available():
                checked = rclone.noop(far, cold=True)
                out[f"latency_{small}_rclone_check"] = {"seconds": checked.seconds, "rss_mib": checked.peak_rss_mib}
    finally:
        server.delete_bucket(near.bucket)
        shutil.rmtree(root, ignore_errors=True)
    return out


def saved_plan(actions: int) -> dict[str, Any]:
    done = run([sys.executable, "-m", "bench.savedplan", str(actions)], env=dict(os.environ), cwd=HERE.parent)
    return {"saved_plan": dict(json.loads(done.stdout))}


def settle(tree: Path) -> None:
    """Wait until the tree's newest file is out of the hash cache's racy window, as a user's data written a while
    before the sync is: its md5 from the plan is then cached, and the upload takes it instead of hashing again."""
    newest = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in (p.stat() for p in tree.rglob("*") if p.is_file()))
    time.sleep(max(0, newest + RACY_WINDOW_NS - time.time_ns()) / 1e9)


def flushed() -> None:
    """Dirty pages written to disk before a tool is timed: the tree just generated and the server's writes
    of the tool before. Left dirty, the kernel writes them back about 30 s after they were written, inside
    whichever tool runs next: sampled every 100 ms, both cores sat idle in iowait for 0.5-1 s at a time,
    2-3 s of a 17 s pixel upload of 8 x 256 MiB that ran first after the tree was generated, and none once
    the pages were flushed before it."""
    os.sync()


def big_files(
    server: SeaweedServer, tools: list[Any], work: Path, count: int, mib: int, run_no: int = 1
) -> dict[str, Any]:
    """Upload of `count` files of `mib` MiB by every tool: MB/s. The tools take turns going first, one
    place further each run: no tool always meets what the one before it left behind."""
    root = work / "big"
    shutil.rmtree(root, ignore_errors=True)
    src = root / "data"
    src.mkdir(parents=True)
    total = dataset.generate(src, dataset.Shape(small_files=0, dirs=0, big_files=count, big_size=mib * dataset.MIB))
    settle(src)
    out: dict[str, Any] = {}
    try:
        turn = (run_no - 1) % max(1, len(tools))
        for tool in tools[turn:] + tools[:turn]:
            slug = tool.name.split()[0].lower()
            (root / slug).mkdir()
            t = _target(server, root / slug, src, f"big-{slug}")
            flushed()
            try:
                up = tool.upload(t)
            finally:
                server.delete_bucket(t.bucket)
            rate = total / up.seconds / 1e6
            out[f"big_upload_{slug}"] = {"seconds": up.seconds, "rss_mib": up.peak_rss_mib, "mb_per_s": rate}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out
