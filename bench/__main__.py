"""`make bench`: pixel against aws s3 sync and rclone on one throwaway SeaweedFS, in one run.

    python -m bench [--runs 3] [--tools pixel,aws,rclone] [--small 10000] [--big 5] [--big-mib 64]
                    [--latency 10000,100000] [--saved-plan 200000] [--big-files 8 --big-files-mib 256] [--huge]
                    [--quick]

Cases, per tool and run, each on a fresh bucket and a freshly generated (seeded) tree:
initial upload; no-op with a cold hash cache and a warm one; 100 same-size edits
(mtime moves) synced; 100 same-size edits with the mtime restored (which tools
catch them). Beside them: the floor (stat every file + the fastest raw listing),
a 200,000-action markdown render and a 1,000,000-object plan. Then (bench/cases.py)
the same tree without its big files, the warm no-op behind a loopback relay adding
25 ms each way on 10,000 and 100,000 objects (pixel at several --parallelism, rclone check), a saved plan of
200,000 actions written and read back, 8 x 256 MiB files uploaded by every tool,
and with --huge a plan of 10,000,000 objects. Prints a table of medians and the
min/median/max of every figure, and writes them all to bench/results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from bench import cases as more_cases
from bench import dataset
from bench.measure import Run, run
from bench.tools import AwsCli, Pixel, Rclone, Target
from reconciler.dev.seaweed import SeaweedServer

HERE = Path(__file__).resolve().parent


class Tool(Protocol):
    name: str

    def available(self) -> bool: ...
    def version(self) -> str: ...
    def upload(self, t: Target) -> Run: ...
    def noop(self, t: Target, *, cold: bool) -> Run: ...
    def sync(self, t: Target) -> Run: ...


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def listed_etags(server: SeaweedServer, bucket: str, prefix: str) -> dict[str, str]:
    client = server.client()
    etags: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            etags[obj["Key"][len(prefix) :]] = obj["ETag"].strip('"')
    return etags


def caught(server: SeaweedServer, t: Target, edited: dict[str, str]) -> int:
    """How many edited files S3 now holds with their new content (small files: the ETag is the md5)."""
    etags = listed_etags(server, t.bucket, t.prefix)
    return sum(etags.get(rel) == md5 for rel, md5 in edited.items())


def one_tool(server: SeaweedServer, tool: Tool, shape: dataset.Shape, work: Path, run_no: int) -> dict[str, Any]:
    slug = tool.name.split()[0].lower()
    root = work / f"{slug}-{run_no}"
    shutil.rmtree(root, ignore_errors=True)
    src = root / "data"
    src.mkdir(parents=True)
    dataset.generate(src, shape)
    more_cases.flushed()
    bucket = server.create_bucket(f"bench-{slug}-{run_no}-{uuid.uuid4().hex[:6]}")
    t = Target(
        src=src, bucket=bucket, prefix="bench/data/", endpoint=server.endpoint, env=server.child_env(), work=root
    )
    out: dict[str, Any] = {"tool": tool.name, "run": run_no}
    try:
        up = tool.upload(t)
        stored = len(listed_etags(server, bucket, t.prefix))
        if stored != shape.objects:
            raise RuntimeError(f"{tool.name} uploaded {stored} objects, expected {shape.objects}")
        out["upload"] = {"seconds": up.seconds, "rss_mib": up.peak_rss_mib, "objects_per_s": shape.objects / up.seconds}
        cold = tool.noop(t, cold=True)
        out["noop_cold"] = {"seconds": cold.seconds, "rss_mib": cold.peak_rss_mib}
        if isinstance(tool, Pixel):
            # The cold run above filled nothing. pixel's own first warm run would fill the cache only once the
            # fresh tree has left the racy window, seconds after it was written, and sooner or later depending
            # on the machine's load: the hash stage fills it with a clock past the window instead.
            fill = [sys.executable, "-m", "bench.hashstage", str(src), str(tool.cache(t, "noop-cache"))]
            run(fill, env=t.env, cwd=HERE.parent)
            warm = tool.noop(t, cold=False)
            out["noop_warm"] = {"seconds": warm.seconds, "rss_mib": warm.peak_rss_mib}
            out["files_read"] = {"cold": tool.files_read[-2], "warm": tool.files_read[-1]}
            # The warm run above found nothing to do and kept its no-op memo (commands/noop_memo.py): the next
            # warm run, nothing changed, is answered by it, as a CI job's plan of an unchanged tree is.
            again = tool.noop(t, cold=False)
            out["noop_memo"] = {"seconds": again.seconds, "rss_mib": again.peak_rss_mib}
            floor = run(
                [sys.executable, "-m", "bench.floor", str(src), server.endpoint, bucket, t.prefix],
                env=t.env,
                cwd=HERE.parent,
            )
            cache = Path(tempfile.mkdtemp(dir=root, prefix="hash-cache-"))
            for stage in ("hash_stage_cold", "hash_stage_warm"):
                hashed = run(
                    [sys.executable, "-m", "bench.hashstage", str(src), str(cache)], env=t.env, cwd=HERE.parent
                )
                out[stage] = {**json.loads(hashed.stdout), "rss_mib": hashed.peak_rss_mib}
            files, objects, _ = floor.stdout.split()
            out["floor"] = {
                "seconds": floor.seconds,
                "rss_mib": floor.peak_rss_mib,
                "files": int(files),
                "objects": int(objects),
            }
        edited = dataset.edit_same_size(src, shape, count=shape.edits, restore_mtime=False, salt=1)
        synced = tool.sync(t)
        out["edits"] = {"seconds": synced.seconds, "rss_mib": synced.peak_rss_mib, "caught": caught(server, t, edited)}
        restored = dataset.edit_same_size(src, shape, count=shape.edits, restore_mtime=True, salt=2)
        synced = tool.sync(t)
        out["edits_mtime_restored"] = {
            "seconds": synced.seconds,
            "rss_mib": synced.peak_rss_mib,
            "caught": caught(server, t, restored),
        }
    finally:
        server.delete_bucket(bucket)
        shutil.rmtree(root, ignore_errors=True)
    return out


def markdown_row(actions: int) -> dict[str, Any]:
    script = f"from bench.render_bench import main; main({actions})"
    result = run([sys.executable, "-c", script], env=dict(os.environ), cwd=HERE.parent)
    return dict(json.loads(result.stdout))


def million_row(n: int) -> dict[str, Any]:
    from bench.million import run_million

    return dict(run_million(n))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(per_run: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{tool: {case: {metric: median over runs}}}."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for record in per_run:
        tool = out.setdefault(record["tool"], {})
        for case, metrics in record.items():
            if isinstance(metrics, dict):
                for metric, value in metrics.items():
                    if isinstance(value, int | float):
                        tool.setdefault(case, {}).setdefault(metric, []).append(value)
    return {
        tool: {case: {m: median(v) for m, v in metrics.items()} for case, metrics in cases.items()}
        for tool, cases in out.items()
    }


def spread(per_run: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """{tool: {case: {metric: [min, median, max] over runs}}}."""
    values: dict[str, dict[str, dict[str, list[float]]]] = {}
    for record in per_run:
        for case, metrics in record.items():
            if isinstance(metrics, dict):
                for metric, value in metrics.items():
                    if isinstance(value, int | float):
                        values.setdefault(record["tool"], {}).setdefault(case, {}).setdefault(metric, []).append(value)
    return {
        tool: {
            case: {m: [min(v), median(v), max(v)] for m, v in metrics.items()} for case, metrics in by_case.items()
        }
        for tool, by_case in values.items()
    }


def spread_table(ranges: dict[str, dict[str, dict[str, list[float]]]]) -> str:
    lines = ["", "min / median / max over the runs:"]
    for tool, by_case in ranges.items():
        for case, metrics in by_case.items():
            shown = ", ".join(
                f"{metric} {lo:,.3g} / {mid:,.3g} / {hi:,.3g}" for metric, (lo, mid, hi) in sorted(metrics.items())
            )
            lines.append(f"  {tool:<22} {case:<34} {shown}")
    return "\n".join(lines)


def table(summary: dict[str, Any], extra: dict[str, Any], shape: dataset.Shape, runs: int) -> str:
    lines: list[str] = []
    add = lines.append
    mib = (shape.small_files * 4.5 * 1024 + shape.big_files * shape.big_size) / 2**20
    add(f"pixel benchmark: {shape.objects:,} files (~{mib:,.0f} MiB), median of {runs} run(s), SeaweedFS on loopback")
    add("")
    add(f"| {'case':<44} | {'tool':<16} | {'median s':>9} | {'peak RSS MiB':>12} | {'objects/s':>9} | {'found':>7} |")
    add(f"|{'-' * 46}|{'-' * 18}|{'-' * 11}|{'-' * 14}|{'-' * 11}|{'-' * 9}|")

    def row(case: str, tool: str, m: dict[str, float] | None, *, rate: bool = False, found: str = "") -> None:
        if m is None:
            return
        r = f"{m['objects_per_s']:,.0f}" if rate else ""
        add(f"| {case:<44} | {tool:<16} | {m['seconds']:>9.2f} | {m['rss_mib']:>12.0f} | {r:>9} | {found:>7} |")

    names = {"pixel": "pixel apply", "aws s3 sync": "aws s3 sync", "rclone": "rclone copy"}
    for tool, cases in summary.items():
        row("initial upload", names.get(tool, tool), cases.get("upload"), rate=True)
    noop_names = {"pixel": "pixel plan", "aws s3 sync": "aws sync --dryrun", "rclone": "rclone check"}
    for tool, cases in summary.items():
        label = "no-op, cold hash cache" if tool == "pixel" else "no-op"
        reads = cases.get("files_read", {})
        row(
            label,
            noop_names.get(tool, tool),
            cases.get("noop_cold"),
            found=f"{reads.get('cold', 0):.0f} rd" if reads else "",
        )
    pixel = summary.get("pixel", {})
    reads = pixel.get("files_read", {})
    row("no-op, warm hash cache", "pixel plan", pixel.get("noop_warm"), found=f"{reads.get('warm', 0):.0f} rd")
    row("no-op, warm hash cache + no-op memo", "pixel plan", pixel.get("noop_memo"))
    row("floor: scandir + raw ListObjectsV2 (ET)", "python, no boto3", pixel.get("floor"))
    for stage, label in (
        ("hash_stage_cold", "hash stage alone, cold cache"),
        ("hash_stage_warm", "hash stage alone, warm cache"),
    ):
        m = pixel.get(stage)
        if m is not None:
            row(label, "CachedHasher", m, found=f"{m['read']:.0f} rd")
    sync_names = {"pixel": "pixel apply", "aws s3 sync": "aws s3 sync", "rclone": "rclone sync"}
    for case, label in (
        ("edits", f"{shape.edits} same-size edits, mtime moves"),
        ("edits_mtime_restored", f"{shape.edits} same-size edits, mtime restored"),
    ):
        for tool, cases in summary.items():
            m = cases.get(case)
            if m is not None:
                row(label, sync_names.get(tool, tool), m, found=f"{m['caught']:.0f}/{shape.edits}")
    md = extra.get("markdown")
    if md:
        row(f"markdown of {md['actions']:,} actions", "render_markdown", md, found=f"{md['chars'] / 1000:.0f}k ch")
    svc = extra.get("service")
    if svc:
        label = f"service: {svc['clients']} clients x {svc['requests_per_client']:,} GETs"
        found = f"{svc['errors']} err"
        add(
            f"| {label:<44} | {'pixel serve':<16} | {svc['seconds']:>9.2f} | {'':>12} | {svc['requests_per_s']:>9,.0f} "
            f"| {found:>7} |"
        )
        add(f"|   p50 {svc['p50_ms']:.1f} ms, p99 {svc['p99_ms']:.1f} ms (a {svc['images']}-image actor's document)")
        for w in svc.get("wrk") or []:
            add(
                f"|   wrk -c{w['connections']:<3} {w['route']:<19}: {w['requests_per_s']:>7,.0f} req/s, "
                f"p50 {w['p50_ms']:.2f} ms, p99 {w['p99_ms']:.2f} ms, {w['errors']} err"
            )
    final = extra.get("final_compile")
    if final:
        mib = final["source_bytes"] / 2**20
        row(f"final dataset: compile {mib:,.0f} MiB JSONL to shards", "compile action", final,
            found=f"{final['mb_per_s']:.0f} MB/s")
    far_rows(summary.get("cases", {}), row)
    mil = extra.get("million")
    if mil:
        per = f"{mil['rss_bytes_per_object']:.0f} B/o"
        row("plan of 1,000,000 objects (1% changed)", "plan()", {**mil, "rss_mib": mil["peak_rss_mib"]}, found=per)
    scale = extra.get("scale")
    if scale:
        from bench.scale import table_lines

        add("")
        add("Beyond one machine (bench/scale.py):")
        lines.extend(table_lines(scale))
    add("")
    add("Targets (ratios from this run):")
    for line in targets(summary, extra, shape.edits):
        add(f"  {line}")
    add("")
    add("What limits the upload rows:")
    lines.extend(f"  {line}" for line in UPLOAD_LIMITS)
    return "\n".join(lines)


UPLOAD_LIMITS = (
    "the machine's CPU: client and SeaweedFS share 2 cores, so objects/s goes as 1 / (client's + server's CPU",
    "  per file) once both are busy. One apply of the tree (10,000 small + 5 x 64 MiB), measured alternated with",
    "  rclone (docs/design.md, bulk28): pixel ~6.0-6.6 s of client CPU (10.6 s before the small-upload lane) and",
    "  SeaweedFS ~11.5 s under it; rclone ~8.1-8.4 s and ~15.8-16.1 s. Small files go out from the executor's",
    "  own thread over non-blocking connections (apply/bulk.py): no worker thread per file, so none of the",
    "  ~120-145 GIL hand-offs (futex) a file cost before.",
    "what is left: pixel's serial start with the server idle, ~2.2 s (imports, specs and the lock ~0.7 s, the",
    "  lock's PUT being SeaweedFS growing a fresh bucket's volume as any tool's first PUT does; the hash stage",
    "  ~1.0-1.2 s, md5 of every byte, 10,000 files read; plan + preview ~0.3 s) against rclone's ~0.1 s.",
    "big files: the server's ~9 ns/byte for any client, and while their bodies are in flight SeaweedFS all but",
    "  stops taking small PUTs (pixel's and rclone's alike), so their ~1.5 s does not hide inside the small",
    "  files' (largest first or last: the same total). The 64 MiB files go as one PUT each, Content-MD5 the",
    "  plan's md5 (checked by the server), so the plan's hash is their one md5 pass.",
)


def far_rows(far: dict[str, Any], row: Callable[..., None]) -> None:
    """The warm no-op behind the 25 ms relay, per tree size (pixel at each --parallelism, rclone check), and the
    saved plan written and read back."""
    for size in sorted({int(c.split("_")[1]) for c in far if c.startswith("latency_")}):
        label = f"no-op, warm, 25 ms each way, {size:,} objects"
        for parallelism in sorted(int(c.rsplit("_p", 1)[1]) for c in far if c.startswith(f"latency_{size}_pixel_p")):
            row(label, f"pixel plan -p {parallelism}", far[f"latency_{size}_pixel_p{parallelism}"])
        row(label, "rclone check", far.get(f"latency_{size}_rclone_check"))
    saved = far.get("saved_plan")
    if saved:
        n = f"{saved['actions']:,.0f}"
        row(f"saved plan of {n} actions: write", "pixel plan -out", {**saved, "seconds": saved["write_seconds"]},
            found=f"{saved['bytes'] / 1e6:.0f} MB")
        row(f"saved plan of {n} actions: read + check", "pixel show/apply", {**saved, "seconds": saved["read_seconds"]},
            found=f"{saved.get('read_cpu_seconds', 0):.2f} cpu")


def targets(summary: dict[str, Any], extra: dict[str, Any], edits: int) -> list[str]:
    out: list[str] = []
    pixel = summary.get("pixel", {})
    warm = pixel.get("noop_warm", {}).get("seconds")
    cold = pixel.get("noop_cold", {}).get("seconds")
    floor = pixel.get("floor", {}).get("seconds")

    def check(label: str, value: float | None, limit: float, *, at_least: bool = False, unit: str = "x") -> None:
        if value is None:
            out.append(f"[n/a ] {label}: not measured (peer not installed? `make bench-peers`)")
            return
        ok = value >= limit if at_least else value <= limit
        sign = ">=" if at_least else "<="
        out.append(f"[{'met ' if ok else 'MISS'}] {label}: {value:.2f}{unit} (target {sign} {limit}{unit})")

    def peer(tool: str, case: str, metric: str = "seconds") -> float | None:
        value = summary.get(tool, {}).get(case, {}).get(metric)
        return float(value) if value is not None else None

    rc, aw = peer("rclone", "noop_cold"), peer("aws s3 sync", "noop_cold")
    check("no-op warm / rclone check", warm / rc if warm and rc else None, 0.5)
    check("no-op warm / aws s3 sync --dryrun", warm / aw if warm and aw else None, 0.25)
    check("no-op warm / floor", warm / floor if warm and floor else None, 1.3)  # issue 28
    small_warm = peer("pixel [small-only]", "noop_warm")
    small_rc = peer("rclone [small-only]", "noop_cold")
    check("small-files-only no-op warm / rclone check", small_warm / small_rc if small_warm and small_rc else None, 0.5)
    # The same no-ops once the memo of the last one answers (nothing changed since it: the CI case).
    memo = pixel.get("noop_memo", {}).get("seconds")
    check("no-op memo / rclone check", memo / rc if memo and rc else None, 0.5)
    check("no-op memo / aws s3 sync --dryrun", memo / aw if memo and aw else None, 0.25)
    check("no-op memo / floor", memo / floor if memo and floor else None, 1.3)
    small_memo = peer("pixel [small-only]", "noop_memo")
    check("small-files-only no-op memo / rclone check", small_memo / small_rc if small_memo and small_rc else None, 0.5)
    far = summary.get("cases", {})
    for size in sorted({int(c.split("_")[1]) for c in far if c.startswith("latency_")}):
        best = min((m["seconds"] for c, m in far.items() if c.startswith(f"latency_{size}_pixel_")), default=None)
        rc_far = far.get(f"latency_{size}_rclone_check", {}).get("seconds")
        ratio = best / rc_far if best and rc_far else None
        check(f"no-op warm at 25 ms each way, {size:,} objects / rclone check", ratio, 0.5)
    saved = far.get("saved_plan")
    if saved:
        n = f"{saved['actions']:,.0f}"
        check(f"saved plan of {n} actions: write", saved["write_seconds"], 3.0, unit=" s")
        check(f"saved plan of {n} actions: read + check", saved["read_seconds"], 3.0, unit=" s")
    big = {c.removeprefix("big_upload_"): m["mb_per_s"] for c, m in far.items() if c.startswith("big_upload_")}
    peers_big = [v for tool, v in big.items() if tool != "pixel"]
    if "pixel" in big:
        fastest = max(peers_big, default=None)
        check("big-file upload MB/s / fastest peer", big["pixel"] / fastest if fastest else None, 1.0, at_least=True)
    check("no-op cold / warm (hash cache pays)", cold / warm if cold and warm else None, 5.0, at_least=True)
    hot, chilly = pixel.get("hash_stage_warm", {}).get("seconds"), pixel.get("hash_stage_cold", {}).get("seconds")
    check("hash stage alone: cold / warm", chilly / hot if chilly and hot else None, 5.0, at_least=True)
    reads = pixel.get("files_read", {})
    if reads:
        check("files read by the warm no-op", reads.get("warm"), 0, unit="")
    up = peer("pixel", "upload", "objects_per_s")
    rcu, awu = peer("rclone", "upload", "objects_per_s"), peer("aws s3 sync", "upload", "objects_per_s")
    check("upload objects/s / rclone (medians)", up / rcu if up and rcu else None, 1.2, at_least=True)
    lows = extra.get("spread", {})
    up_min = lows.get("pixel", {}).get("upload", {}).get("objects_per_s", [None])[0]
    rc_min = lows.get("rclone", {}).get("upload", {}).get("objects_per_s", [None])[0]
    low_ratio = up_min / rc_min if up_min and rc_min else None
    check("upload objects/s / rclone (min of the runs)", low_ratio, 1.2, at_least=True)
    check("upload objects/s / aws s3 sync", up / awu if up and awu else None, 2.5, at_least=True)
    found = peer("pixel", "edits_mtime_restored", "caught")
    peers = ", ".join(
        f"{tool}: {cases['edits_mtime_restored']['caught']:.0f}"
        for tool, cases in summary.items()
        if tool != "pixel" and "edits_mtime_restored" in cases
    )
    check(f"edits with mtime restored found by pixel (peers: {peers or 'n/a'})", found, edits, at_least=True, unit="")
    md = extra.get("markdown")
    if md:
        check(f"markdown of {md['actions']:,} actions, seconds", md["seconds"], 2.0, unit=" s")
        check(f"markdown of {md['actions']:,} actions, characters", md["chars"], 65_000, unit="")
    svc = extra.get("service")
    if svc:
        check("service training-data p99 latency", svc["p99_ms"], 50.0, unit=" ms")
        check("service errors", svc["errors"], 0, unit="")
        wrk = {(w["route"], w["connections"]): w for w in svc.get("wrk") or []}
        one, ten, fifty = (wrk.get(("actor, 10 images", c)) for c in (1, 10, 50))
        check("service, wrk -c1: median latency", one["p50_ms"] if one else None, 3.0, unit=" ms")
        check("service, wrk -c10: p99 latency", ten["p99_ms"] if ten else None, 10.0, unit=" ms")
        check("service, wrk -c50: requests/s", fifty["requests_per_s"] if fifty else None, 3000, at_least=True, unit="")
    mil = extra.get("million")
    if mil:
        check("1M-object plan, seconds", mil["seconds"], 20.0, unit=" s")
        check("1M-object plan, peak RSS bytes per object", mil["rss_bytes_per_object"], 1024, unit=" B")
    final = extra.get("final_compile")
    if final:
        check("final-dataset compile, peak RSS MiB", final["rss_mib"], 250, unit=" MiB")
    scale = extra.get("scale")
    if scale:
        for case in ("uploads", "copies"):
            if case in scale:
                check(f"{case}: LocalCluster(2) / local executor", scale[case]["ratio"], 1.1)
    huge = extra.get("huge")
    if huge:
        check("10M-object plan, peak RSS bytes per object", huge["rss_bytes_per_object"], 1024, unit=" B")
    return out


# `--quick`: the same cases, 100k-at-25 ms included in shape, on trees small enough for a loaded laptop.
QUICK: dict[str, Any] = {
    "runs": 1, "small": 1_000, "big": 1, "big_mib": 8, "edits": 20, "million": 20_000, "loader_mib": 16,
    "loader_shards": 20, "loader_shard_mib": 0.2, "service_clients": 5, "service_requests": 100,
    "service_wrk_seconds": 1, "final_mib": 8, "scale_actions": 400, "scale_objects": 20_000,
    "latency": "1000,5000", "saved_plan": 20_000, "big_files": 1, "big_files_mib": 32,
}


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", default="pixel,aws,rclone", help="comma-separated subset of pixel,aws,rclone")
    parser.add_argument("--small", type=int, default=10_000, help="small files (1-8 KiB)")
    parser.add_argument("--big", type=int, default=5, help="big files")
    parser.add_argument("--big-mib", type=int, default=64)
    parser.add_argument("--edits", type=int, default=100, help="same-size edits per edit case")
    parser.add_argument("--million", type=int, default=1_000_000, help="objects in the synthetic plan (0: skip)")
    parser.add_argument("--no-markdown", action="store_true", help="skip the 200,000-action markdown row")
    # The harness test's knob: that 200,000 actions render under the cap is tests/unit/plan/test_render_markdown's.
    parser.add_argument("--markdown-actions", type=int, default=200_000, help=argparse.SUPPRESS)
    parser.add_argument("--loader-mib", type=int, default=1024, help="loader section: the large JSONL object")
    parser.add_argument("--loader-shards", type=int, default=1000, help="loader section: number of shards")
    parser.add_argument("--loader-shard-mib", type=float, default=1.0, help="loader section: size of each shard")
    parser.add_argument("--no-loader", action="store_true", help="skip the loader section")
    parser.add_argument("--service-clients", type=int, default=50, help="concurrent clients of pixel serve")
    parser.add_argument("--service-requests", type=int, default=2_000, help="requests per client (0: skip the row)")
    parser.add_argument("--service-wrk-seconds", type=int, default=5,
                        help="seconds of wrk per route and connection count (0: skip; wrk from `make bench-peers`)")
    parser.add_argument(
        "--final-mib", type=int, default=1024, help="source JSONL for the final-dataset compile row (0: skip)"
    )
    parser.add_argument("--scale-actions", type=int, default=20_000,
                        help="uploads and copies, local executor vs LocalCluster(2) (0: skip; bench/scale.py)")
    parser.add_argument("--scale-objects", type=int, default=1_000_000,
                        help="objects planned from an inventory report vs a listing (0: skip)")
    parser.add_argument("--no-small-only", action="store_true", help="skip the tree without its big files")
    parser.add_argument("--latency", default="10000,100000", help="small files for the 25 ms case ('': skip)")
    parser.add_argument("--saved-plan", type=int, default=200_000, help="actions in the saved-plan case (0: skip)")
    parser.add_argument("--big-files", type=int, default=8, help="files in the big-file upload case (0: skip)")
    parser.add_argument("--big-files-mib", type=int, default=256)
    parser.add_argument("--huge", action="store_true", help="also plan 10,000,000 objects (minutes, ~10 GiB)")
    parser.add_argument("--huge-objects", type=int, default=10_000_000, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--work", type=Path, default=HERE / ".work")
    parser.add_argument("--quick", action="store_true",
                        help="every case on small trees, one run, for development (flags given still count)")
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(**QUICK)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)

    shape = dataset.Shape(
        small_files=args.small, big_files=args.big, big_size=args.big_mib * dataset.MIB, edits=args.edits
    )
    wanted = set(args.tools.split(","))
    all_tools: list[Tool] = [Pixel(), AwsCli(), Rclone()]
    keys = {"pixel": "pixel", "aws s3 sync": "aws", "rclone": "rclone"}
    tools = [t for t in all_tools if keys[t.name] in wanted]
    missing = [t.name for t in tools if not t.available()]
    tools = [t for t in tools if t.available()]
    if missing:
        say(f"not installed, skipped: {', '.join(missing)} (`make bench-peers` installs them)")
    versions = {t.name: t.version() for t in tools}
    say(f"tools: {versions}")

    per_run: list[dict[str, Any]] = []
    args.work.mkdir(parents=True, exist_ok=True)
    with SeaweedServer(volume_size_limit_mb=256) as server:
        say(f"SeaweedFS at {server.endpoint}")
        for run_no in range(1, args.runs + 1):
            shapes = [(shape, "")]
            if not args.no_small_only and shape.big_files:
                shapes.append((dataclasses.replace(shape, big_files=0), " [small-only]"))
            for tree, label in shapes:
                for tool in tools:
                    say(f"run {run_no}/{args.runs}: {tool.name}{label} ...")
                    record = one_tool(server, tool, tree, args.work, run_no)
                    record["tool"] += label
                    per_run.append(record)
                    say("  " + json.dumps({k: v for k, v in record.items() if isinstance(v, dict)}, default=str)[:400])
            more: dict[str, Any] = {"tool": "cases", "run": run_no}
            for size in [int(n) for n in args.latency.split(",") if n.strip()]:
                say(f"run {run_no}/{args.runs}: warm no-op of {size:,} objects at 25 ms each way ...")
                more.update(more_cases.latency(server, args.work, size))
            if args.saved_plan:
                say(f"run {run_no}/{args.runs}: saved plan of {args.saved_plan:,} actions ...")
                more.update(more_cases.saved_plan(args.saved_plan))
            if args.big_files:
                say(f"run {run_no}/{args.runs}: {args.big_files} x {args.big_files_mib} MiB uploads ...")
                more.update(more_cases.big_files(server, tools, args.work, args.big_files, args.big_files_mib, run_no))
            per_run.append(more)
        extra: dict[str, Any] = {}
        if not args.no_loader:
            from bench.loader import run_section

            extra["loader"] = run_section(
                server, args.work / "loader", runs=args.runs, mib=args.loader_mib, shards=args.loader_shards,
                shard_mib=args.loader_shard_mib, say=say,
            )
        if args.service_requests:
            from bench.service import service_row

            say(f"pixel serve: {args.service_clients} clients x {args.service_requests:,} requests ...")
            extra["service"] = service_row(
                server, args.work, clients=args.service_clients, requests=args.service_requests,
                wrk_seconds=args.service_wrk_seconds,
            )
        if args.final_mib:
            from bench.final_compile import run_final_compile

            say(f"final dataset: compiling {args.final_mib:,} MiB of source JSONL into shards ...")
            bucket = server.create_bucket(f"bench-final-{uuid.uuid4().hex[:8]}")
            env = {**os.environ, **server.env()}
            work = args.work / "final"
            extra["final_compile"] = run_final_compile(server.endpoint, bucket, work, args.final_mib, env)
        if args.scale_actions:
            from bench.scale import run_scale

            say(f"{args.scale_actions:,} uploads and copies, local executor vs LocalCluster(2); inventory plan ...")
            extra["scale"] = run_scale(
                server, args.work, actions=args.scale_actions, objects=args.scale_objects, parallelism=16
            )
    if not args.no_markdown:
        say(f"markdown render of {args.markdown_actions:,} actions ...")
        extra["markdown"] = markdown_row(args.markdown_actions)
    if args.million:
        say(f"plan of {args.million:,} objects ...")
        extra["million"] = million_row(args.million)
    if args.huge:
        say(f"plan of {args.huge_objects:,} objects ...")
        extra["huge"] = million_row(args.huge_objects)
    summary = summarise(per_run)
    extra["spread"] = spread(per_run)
    text = table(summary, extra, shape, args.runs) + "\n" + spread_table(extra["spread"])
    if "loader" in extra:
        from bench.loader import table as loader_table
        from bench.loader import targets as loader_targets

        text += "\n" + loader_table(extra["loader"])
        extra["loader"]["targets"] = loader_targets(extra["loader"])
    print(text)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout
    args.out.write_text(
        json.dumps(
            {
                "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "commit": commit.strip(),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "shape": {"small_files": shape.small_files, "big_files": shape.big_files, "big_mib": args.big_mib},
                "tools": versions,
                "runs": per_run,
                "medians": summary,
                "extra": extra,
                "targets": targets(summary, extra, shape.edits),
                "table": text,
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    say(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
