"""The loader section of `make bench`: stream JSON Lines out of SeaweedFS, pixel's loader against three peers.

Two datasets, generated from a seed (chat records of ~1.6 KB): one large JSONL
object (1 GiB by default) and many small shards (1,000 of 1 MiB). Every reader
runs as its own process (bench/loader_read.py) and reads everything: the naive
loader (boto3 get_object + iter_lines + json.loads), the same with orjson and
1 MiB chunks (the parse-bound ceiling on one core), s3fs the fast way (its file
behind an 8 MiB io.BufferedReader; only when `make bench-peers` made its
separate virtualenv, since s3fs pins a botocore that breaks boto3), and pixel's
loader, cold (empty cache: it downloads, verifies and caches) and warm (the
verified copy, after one HEAD, or one listing for the shards). The big object is
a registered dataset, applied once before the runs (untimed) as a user's would
be: `pixel apply` writes its record index beside it and the registry vouches for
it, so a cold reader streams it span by span, each span verified against the
index. On the big object also: the same bytes read by `store:key`, which no
registry entry indexes (verified whole before the first record), and RANKS
ranks at once, each its own cold cache and index directory, against one rank
(bench.loader.read_ranks). Figures: records/s, MB/s, peak RSS, time to first
record; min / median / max over the runs.

    python -m bench.loader [--runs 3] [--mib 1024] [--shards 1000] [--shard-mib 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.measure import run
from reconciler.dev.seaweed import SeaweedServer
from reconciler.loader.cache import SYNC_EVERY
from reconciler.loader.index import SPAN_BYTES

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE / ".work" / "peers-venv"
MIB = 1024 * 1024
SEED = 20261202
_TEXT = (
    "i have been feeling anxious about work and my family lately the therapist asked how sleep has been "
    "we talked about breathing exercises grounding techniques and what helps when panic starts"
)
_WORDS = _TEXT.split()

READERS = ("naive", "naive_orjson", "s3fs_buffered", "pixel_cold", "pixel_warm")
RANKS = 4
LABELS = {
    "naive": "naive: get_object + iter_lines + json",
    "naive_orjson": "naive + orjson, 1 MiB chunks",
    "s3fs_buffered": "s3fs + 8 MiB BufferedReader",
    "pixel_cold": "pixel load_dataset, cold cache",
    "pixel_warm": "pixel load_dataset, warm cache",
    "pixel_ranks": f"pixel, {RANKS} ranks at once, cold (aggregate)",
    "pixel_cold_unindexed": "pixel, cold, store:key (no record index)",
}
BIG_KEY = "bench/processed/chat/big.jsonl"  # the canonical key of the registered dataset "big"


def chat_lines(rng: random.Random, target_bytes: int, start_id: int = 0) -> tuple[bytes, int]:
    """JSON Lines of chat records up to about `target_bytes`; (body, records)."""
    parts: list[bytes] = []
    size = 0
    n = start_id
    while size < target_bytes:
        record = {
            "id": n,
            "messages": [
                {"role": role, "content": " ".join(rng.choices(_WORDS, k=rng.randint(15, 120)))}
                for role in ("system", "user", "assistant")
            ],
            "meta": {"source": "bench", "stage": "stage2_reasoning", "quality": round(rng.random(), 3)},
        }
        line = (json.dumps(record) + "\n").encode()
        parts.append(line)
        size += len(line)
        n += 1
    return b"".join(parts), n - start_id


def upload(client: Any, bucket: str, key: str, path_or_body: Path | bytes) -> None:
    """With the md5 in metadata, as pixel apply records it (a multipart ETag is no md5)."""
    from boto3.s3.transfer import TransferConfig

    if isinstance(path_or_body, bytes):
        md5 = hashlib.md5(path_or_body).hexdigest()
        client.put_object(Bucket=bucket, Key=key, Body=path_or_body, Metadata={"md5": md5})
        return
    digest = hashlib.md5()
    with open(path_or_body, "rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    client.upload_file(
        str(path_or_body), bucket, key, ExtraArgs={"Metadata": {"md5": digest.hexdigest()}},
        Config=TransferConfig(multipart_chunksize=64 * MIB),
    )


def prepare(server: SeaweedServer, work: Path, mib: int, shards: int, shard_mib: float) -> dict[str, Any]:
    client = server.client()
    bucket = server.create_bucket(f"bench-loader-{random.Random().randrange(16**6):06x}")
    rng = random.Random(SEED)
    big = work / "big.jsonl"
    big_records = 0
    with open(big, "wb") as out:
        written = 0
        while written < mib * MIB:
            body, n = chat_lines(rng, min(16 * MIB, mib * MIB - written), big_records)
            out.write(body)
            written += len(body)
            big_records += n
    upload(client, bucket, BIG_KEY, big)
    big_bytes = big.stat().st_size
    big_safety = safety_cpu(spans_of(big), hashlib.sha256, "SHA-256", work / "safety-probe")
    big.unlink()
    shard_bodies = []
    shard_records = 0
    for i in range(shards):
        body, n = chat_lines(rng, int(shard_mib * MIB), shard_records)
        shard_bodies.append((f"bench/processed/shards/part-{i:05d}.jsonl", body))
        shard_records += n
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kb: upload(client, bucket, kb[0], kb[1]), shard_bodies))
    specs = work / "specs"
    specs.mkdir(parents=True, exist_ok=True)
    (specs / "bench.yaml").write_text(
        "stores:\n"
        "  bench:\n"
        "    type: s3\n"
        f"    bucket: {bucket}\n"
        f"    endpoint: {server.endpoint}\n"
        "    region: us-east-1\n"
        "    addressing_style: path\n"
        "    checksum: when_required\n"
        "  work:\n"
        "    type: local\n"
        f"    root: {work / 'registry'}\n"
        "tiers:\n"
        '  processed: {at: "bench:bench/processed/"}\n'
        "datasets:\n"
        "  registry: work:registry.json\n"
        "  items:\n"
        "    - {name: big, tier: processed, category: chat, format: jsonl}\n"
    )
    # As a user's registered dataset: apply indexes the object and records the index's md5 in the registry.
    run([str(Path(sys.executable).with_name("pixel")), "apply", "--auto-approve", "-q", "--specs", str(specs)],
        env={**server.child_env(), "PIXEL_CACHE_DIR": str(work / "apply-cache")}, cwd=HERE.parent)
    return {
        "bucket": bucket,
        "specs": specs,
        "cases": {
            "one_big": {"target": BIG_KEY, "name": "big", "records": big_records, "bytes": big_bytes,
                        "safety": big_safety},
            "shards": {"target": "bench/processed/shards/", "name": "shards/*.jsonl", "records": shard_records,
                       "bytes": sum(len(b) for _, b in shard_bodies),
                       # A shard is no bigger than a span: verified whole by its md5, as the cache fills it.
                       "safety": safety_cpu(([b] for _, b in shard_bodies), hashlib.md5, "md5",
                                            work / "safety-probe")},
        },
    }


def spans_of(path: Path) -> Iterable[list[bytes]]:
    """The big object as one piece list of SPAN_BYTES pieces, about as the cold reader hashes and writes it."""
    with open(path, "rb") as f:
        yield list(iter(lambda: f.read(SPAN_BYTES), b""))


def safety_cpu(objects: Iterable[list[bytes]], digest: Callable[[bytes], Any], name: str,
               directory: Path) -> dict[str, Any]:
    """CPU seconds of what a cold pixel read does to the bytes that naive + orjson does not, timed in this
    process on the same bytes: the digest each span (or small object) is checked against before any record of
    it is used, and the cache copy written with an fdatasync every SYNC_EVERY bytes and an fsync at its end (the
    calling thread's CPU: the kernel's writeback on its own threads is not in it). Each object is a list of
    pieces, hashed one by one."""
    hashing = writing = 0.0
    probe = directory / "part"
    directory.mkdir(parents=True, exist_ok=True)
    try:
        for pieces in objects:
            began = time.thread_time()
            for piece in pieces:
                digest(piece).hexdigest()
            hashing += time.thread_time() - began
            began = time.thread_time()
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                unsynced = 0
                for piece in pieces:
                    os.write(fd, piece)
                    unsynced += len(piece)
                    if unsynced >= SYNC_EVERY:
                        unsynced = 0
                        os.fdatasync(fd)
                os.fsync(fd)
            finally:
                os.close(fd)
            writing += time.thread_time() - began
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {"digest": name, "digest_s": hashing, "cache_write_s": writing}


def peers_python() -> str | None:
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run([str(python), "-c", "import s3fs, orjson"], capture_output=True)
    return str(python) if probe.returncode == 0 else None


def read_once(
    reader: str, server: SeaweedServer, world: dict[str, Any], case: dict[str, Any], cache: Path
) -> dict[str, Any]:
    tool = "pixel" if reader.startswith("pixel") else reader
    python = peers_python() if reader == "s3fs_buffered" else sys.executable
    assert python is not None
    argv = [python, str(HERE / "loader_read.py"), tool, server.endpoint, world["bucket"], case["target"]]
    if tool == "pixel":
        argv += ["--specs", str(world["specs"]), "--cache", str(cache), "--name", case["name"]]
    server_cpu = cpu_seconds(server)
    done = run(argv, env=server.child_env(), cwd=HERE.parent)
    server_cpu = cpu_seconds(server) - server_cpu
    figures = json.loads(done.stdout)
    if figures["records"] != case["records"]:
        raise RuntimeError(f"{reader} read {figures['records']} records, expected {case['records']}")
    return {
        "records_per_s": figures["records"] / figures["seconds"],
        "mb_per_s": case["bytes"] / 1e6 / figures["seconds"],
        "seconds": figures["seconds"],
        "first_record_s": figures["first_s"],
        "rss_mib": done.peak_rss_mib,
        "cpu_s": figures["cpu_s"],
        "server_cpu_s": server_cpu,  # the S3 server's CPU time meanwhile (its start-up and idle included)
    }


def cpu_seconds(server: SeaweedServer) -> float:
    """CPU time the S3 server has used so far (user and system, all its threads), from /proc; 0 elsewhere."""
    proc = server._proc
    if proc is None:
        return 0.0
    try:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def read_unindexed(server: SeaweedServer, world: dict[str, Any], case: dict[str, Any], work: Path) -> dict[str, Any]:
    """The big object by `store:key`, a name no registry entry indexes: a lone cold reader verifies it whole
    before its first record, since nothing vouches for a span of it before the object's md5 does."""
    cache = work / "cache-unindexed"
    shutil.rmtree(cache, ignore_errors=True)
    try:
        return read_once("pixel_cold_unindexed", server, world, {**case, "name": f"bench:{case['target']}"}, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def read_ranks(server: SeaweedServer, world: dict[str, Any], case: dict[str, Any], work: Path) -> dict[str, Any]:
    """RANKS processes at once over one object, each rank its own cold cache and index directory (a node of its
    own, as in a fresh job): each reads the index apply published (one small GET) and downloads only its spans
    by ranged GET. Records/s is every rank's records over the wall time from the first rank's start to the last
    rank's end."""
    caches = [work / f"cache-rank-{rank}" for rank in range(RANKS)]
    barrier = work / "barrier-ranks"

    def argv(rank: int) -> list[str]:
        return [sys.executable, str(HERE / "loader_read.py"), "pixel", server.endpoint, world["bucket"],
                case["target"], "--specs", str(world["specs"]), "--cache", str(caches[rank]), "--name",
                case["name"], "--rank", str(rank), "--world", str(RANKS), "--barrier", str(barrier)]

    for path in (barrier, *caches):
        shutil.rmtree(path, ignore_errors=True)
    barrier.mkdir(parents=True)
    try:
        server_cpu = cpu_seconds(server)
        with ThreadPoolExecutor(RANKS) as pool:
            done = list(pool.map(lambda rank: run(argv(rank), env=server.child_env(), cwd=HERE.parent), range(RANKS)))
        server_cpu = cpu_seconds(server) - server_cpu
    finally:
        for path in (barrier, *caches):
            shutil.rmtree(path, ignore_errors=True)
    figures = [json.loads(d.stdout) for d in done]
    per_rank = {f["records"] for f in figures}
    share = -(-case["records"] // RANKS)  # partition="pad": every rank the rounded-up share
    if per_rank != {share}:
        raise RuntimeError(f"{RANKS} ranks read {sorted(f['records'] for f in figures)} records, expected {share} each")
    wall = max(f["ended"] for f in figures) - min(f["began"] for f in figures)
    return {
        "records_per_s": share * RANKS / wall,
        "mb_per_s": case["bytes"] / 1e6 / wall,
        "seconds": wall,
        "first_record_s": max(f["first_s"] for f in figures),
        "rss_mib": max(d.peak_rss_mib for d in done),
        "rank_seconds": max(f["seconds"] for f in figures),  # the slowest rank on its own clock: no start skew
        "cpu_s": sum(f["cpu_s"] for f in figures),  # every rank's own CPU time: what the cores bound
        "server_cpu_s": server_cpu,
    }


def run_section(server: SeaweedServer, work: Path, *, runs: int, mib: int, shards: int, shard_mib: float,
                say: Any = print) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    say(f"loader: generating {mib} MiB JSONL and {shards} shards of {shard_mib} MiB ...")
    world = prepare(server, work, mib, shards, shard_mib)
    readers = [r for r in READERS if r != "s3fs_buffered" or peers_python()]
    if "s3fs_buffered" not in readers:
        say("loader: s3fs not installed in bench/.work/peers-venv (`make bench-peers`): its row is skipped")
    per: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        for case_name, case in world["cases"].items():
            for run_no in range(1, runs + 1):
                cache = work / f"cache-{case_name}-{run_no}"
                shutil.rmtree(cache, ignore_errors=True)
                for reader in readers:  # pixel_cold fills `cache`, pixel_warm then reads it
                    say(f"loader: {case_name} run {run_no}/{runs}: {reader} ...")
                    figures = read_once(reader, server, world, case, cache)
                    per.setdefault(case_name, {}).setdefault(reader, []).append(figures)
                shutil.rmtree(cache, ignore_errors=True)
                if case_name == "one_big":
                    say(f"loader: {case_name} run {run_no}/{runs}: pixel cold, by store:key (no record index) ...")
                    per[case_name].setdefault("pixel_cold_unindexed", []).append(
                        read_unindexed(server, world, case, work))
                    say(f"loader: {case_name} run {run_no}/{runs}: pixel, {RANKS} ranks at once ...")
                    per[case_name].setdefault("pixel_ranks", []).append(read_ranks(server, world, case, work))
    finally:
        server.delete_bucket(world["bucket"])
    summary = {
        case: {reader: spread(values) for reader, values in readers_.items()} for case, readers_ in per.items()
    }
    return {"cases": {k: {"records": v["records"], "bytes": v["bytes"], "safety": v["safety"]}
                      for k, v in world["cases"].items()},
            "runs": per, "summary": summary}


def spread(values: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{metric: {min, median, max}} over the runs."""
    out: dict[str, dict[str, float]] = {}
    for metric in values[0]:
        series = [float(v[metric]) for v in values]
        out[metric] = {"min": min(series), "median": statistics.median(series), "max": max(series)}
    return out


def _cell(m: dict[str, float], fmt: str) -> str:
    return f"{m['median']:{fmt}} ({m['min']:{fmt}}-{m['max']:{fmt}})"


def table(section: dict[str, Any]) -> str:
    lines = ["", "Loader: records streamed from SeaweedFS, median (min-max)", ""]
    head = (
        f"| {'case':<22} | {'reader':<38} | {'records/s':>27} | {'MB/s':>21} | {'peak RSS MiB':>18} "
        f"| {'first record s':>20} |"
    )
    lines += [head, "|" + "|".join("-" * (len(c) + 0) for c in head.split("|")[1:-1]) + "|"]
    for case, readers in section["summary"].items():
        info = section["cases"][case]
        label = f"{case} ({info['bytes'] / MIB:,.0f} MiB)"
        for reader, m in readers.items():
            lines.append(
                f"| {label:<22} | {LABELS[reader]:<38} | {_cell(m['records_per_s'], ',.0f'):>27} | "
                f"{_cell(m['mb_per_s'], '.0f'):>21} | {_cell(m['rss_mib'], '.0f'):>18} | "
                f"{_cell(m['first_record_s'], '.2f'):>20} |"
            )
    lines += ["", "Loader targets (medians of this run):"]
    lines += [f"  {line}" for line in targets(section)]
    lines += ["", "What limits them:", *(f"  {line}" for line in LIMITS)]
    return "\n".join(lines)


LIMITS = (
    "records/s, cold: the machine's CPU. With the 2 cores busy, records/s goes as 1 / (reader's CPU + server's",
    "  CPU) per byte: SeaweedFS spends ~1.55 s of CPU serving 256 MiB to any reader, naive + orjson ~0.8 s,",
    "  pixel ~1.25 s: its decoding thread costs what naive's whole read does, plus the SHA-256 of every byte",
    "  (each span against the record index before its records are used: ~0.16 s with the CPU's SHA extensions;",
    "  the md5 it replaced cost ~0.45 s) and the cache write (~0.1-0.3 s, fdatasync every 64 MiB, so the fsync",
    "  that ends the pass has little left). That puts cold at about 0.85x naive + orjson on a busy machine",
    "  (0.76x and 1.09x in two series at load 5); a quiet one leaves the threads room to overlap. Spans end",
    "  where SeaweedFS's 4 MiB chunks do, so its pauses there hold no span back. A span crosses from",
    "  the download to the hashing to the decoding thread whole; the GIL's switch interval changed nothing.",
    "  The [info] lines compute that bound from this run's CPU figures (reader and server, both readers) and",
    "  time the digest and the cache write on the same bytes in-process: the part of pixel's extra CPU that is",
    "  the issue's own safety work (no record of unverified bytes, a verified cache) against the rest.",
    "warm / cold: a warm pass is one thread's CPU, no wait: orjson about half, splitting lines and the scan for",
    "  long digit runs about a quarter, opening and checking 1,000 cached copies (one listing of the prefix,",
    "  the recorded identity of each) 4%. A cached copy is opened on the reader's thread, a shard read whole",
    "  and split at once, and a record passes two generator steps; the ratio is cold's CPU a record (download,",
    "  md5, cache write, decoding) over decoding's, with the server's CPU cold shares the cores with on top.",
    "first record: interpreter imports are excluded; what remains is the specs, one HEAD (resolution), one GET",
    "  of the published record index and the first span downloaded and hashed. SeaweedFS stores an object in",
    "  4 MiB chunks and pauses at each chunk boundary (0.06-1.3 s measured on the loaded machine for any reader,",
    "  boto3 too); spans are cut on that grid and the first closes at 1 MiB, so the first record waits for",
    "  neither (0.04-0.17 s measured at load 5, where a first span of 4 MiB and a line took 0.1-1.9 s). Without",
    "  a record index (store:key row), also the whole download.",
    "shards: per object one conditional GET, one lock, one fsync and one rename (the fsync and rename on a",
    "  background thread); no HEAD for an uncached object; three objects are downloaded ahead of the reader at",
    "  once (one ahead left it waiting on the next response a third of the time). Cold pays the same CPU as the",
    "  big object per byte. A warm pass asks S3 with one listing of the prefix, not a HEAD per object.",
    f"{RANKS} ranks: each rank downloads and hashes only its spans (one ranged GET for its run of contiguous",
    "  spans; their CPU together is about one rank's) but they share the machine's cores with each other and",
    "  the server, so the aggregate is bounded by cores / (one rank's and the server's CPU use), not by the",
    "  ranks' count (the [info] lines); each rank pays its own start (specs, boto3 client) and makes the spans",
    "  it caches durable before its pass ends.",
)


def targets(section: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for case, readers in section["summary"].items():
        def med(reader: str, metric: str, readers: dict[str, Any] = readers) -> float | None:
            m = readers.get(reader, {}).get(metric)
            return None if m is None else float(m["median"])

        def check(label: str, value: float | None, limit: float, at_least: bool = True, unit: str = "x",
                  case: str = case) -> None:
            if value is None:
                out.append(f"[n/a ] {case}: {label}: not measured (`make bench-peers` for s3fs)")
                return
            ok = value >= limit if at_least else value < limit
            out.append(f"[{'met ' if ok else 'MISS'}] {case}: {label}: {value:.2f}{unit} "
                       f"(target {'>=' if at_least else '<'} {limit}{unit})")

        cold = med("pixel_cold", "records_per_s")
        warm = med("pixel_warm", "records_per_s")
        # Issue 25's targets; naive and s3fs as issue 12 set them.
        for peer, limit in (("naive", 1.5), ("s3fs_buffered", 1.0), ("naive_orjson", 1.0)):
            other = med(peer, "records_per_s")
            check(f"pixel cold / {peer}", cold / other if cold and other else None, limit)
        check("pixel cold peak RSS", med("pixel_cold", "rss_mib"), 150, at_least=False, unit=" MiB")
        check("pixel cold first record", med("pixel_cold", "first_record_s"), 0.3, at_least=False, unit=" s")
        check("pixel warm / cold", warm / cold if warm and cold else None, 3.0)
        out.extend(cold_bound(case, med, section["cases"][case].get("safety")))
        ranks = med("pixel_ranks", "records_per_s")
        if ranks is not None:
            check(f"pixel {RANKS} ranks aggregate / 1 rank cold", ranks / cold if cold else None, 3.0)
            # The cores' bound: one cold rank and the server keep `busy` cores busy (CPU time over the rank's
            # wall time), so RANKS ranks sharing CORES cores with the server reach at most CORES / busy of it.
            own, served, seconds = (med("pixel_cold", m) for m in ("cpu_s", "server_cpu_s", "seconds"))
            if own and seconds and served is not None:
                cores = os.cpu_count() or 1
                busy = (own + served) / seconds
                out.append(f"[info] {case}: one cold rank uses {own / seconds:.2f} cores, the server "
                           f"{served / seconds:.2f} meanwhile: {RANKS} ranks on {cores} cores reach at most "
                           f"{cores / busy:.2f}x one rank")
            # What the ranks cost together against one reader: their own CPU (each hashes and decodes only its
            # spans, so about the same) and the server's (ranged GETs).
            ranks_own, ranks_served = med("pixel_ranks", "cpu_s"), med("pixel_ranks", "server_cpu_s")
            if own and served and ranks_own is not None and ranks_served is not None:
                out.append(f"[info] {case}: {RANKS} ranks together use {ranks_own / own:.2f}x one rank's CPU, "
                           f"the server {ranks_served / served:.2f}x its CPU for one rank")
    return out


def cold_bound(case: str, med: Callable[[str, str], float | None], safety: dict[str, Any] | None) -> list[str]:
    """The cores' bound for cold against naive + orjson, from the CPU each used (medians of this run). With every
    core busy, a pass takes at least (reader's CPU + server's CPU) / cores, so where both are CPU-bound the ratio
    of records/s is at most the inverse ratio of those sums; and what pixel spends beyond naive + orjson, split
    into the safety work the issue requires (every byte hashed against its digest before a record of it is used,
    the verified cache written and synced) and the rest."""
    figures = {reader: [med(reader, m) for m in ("cpu_s", "server_cpu_s", "seconds")]
               for reader in ("pixel_cold", "naive_orjson")}
    if any(v is None or not v for values in figures.values() for v in values):
        return []
    (own, served, seconds), (peer, peer_served, peer_seconds) = (
        [float(v or 0) for v in figures[r]] for r in ("pixel_cold", "naive_orjson"))
    cores = os.cpu_count() or 1
    out = [f"[info] {case}: pixel cold uses {own / seconds:.2f} cores + server {served / seconds:.2f}; naive+orjson "
           f"{peer / peer_seconds:.2f} + {peer_served / peer_seconds:.2f} (CPU s a pass: pixel {own:.2f} + "
           f"{served:.2f}, naive+orjson {peer:.2f} + {peer_served:.2f}); on {cores} cores both CPU-bound, "
           f"pixel/naive+orjson is at most {(peer + peer_served) / (own + served):.2f}x"]
    if safety:
        required = safety["digest_s"] + safety["cache_write_s"]
        out.append(
            f"[info] {case}: pixel's CPU less naive+orjson's: {own - peer:.2f} s, of which the {safety['digest']} "
            f"of every byte {safety['digest_s']:.2f} s and the cache write + fdatasync {safety['cache_write_s']:.2f} s "
            f"(timed in-process on the same bytes), the rest {own - peer - required:.2f} s; without that safety "
            f"work the bound would be {(peer + peer_served) / (own - required + served):.2f}x")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loader", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mib", type=int, default=1024, help="size of the one large JSONL object")
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--shard-mib", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=HERE / "loader-results.json")
    parser.add_argument("--work", type=Path, default=HERE / ".work" / "loader")
    args = parser.parse_args(argv)
    with SeaweedServer(volume_size_limit_mb=1024) as server:
        section = run_section(server, args.work, runs=args.runs, mib=args.mib, shards=args.shards,
                              shard_mib=args.shard_mib, say=lambda t: print(t, file=sys.stderr, flush=True))
    text = table(section)
    print(text)
    args.out.write_text(json.dumps({**section, "table": text, "targets": targets(section)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
