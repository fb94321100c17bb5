"""The service row: C concurrent clients x N requests each of a 500-image actor's training-data document.

The actor's 500 JPEGs are written locally and put in S3 by a real `pixel apply`
(which writes the manifest), then a real `pixel serve` process answers on
loopback. The load comes from another process: a lean asyncio HTTP/1.1 client
(keep-alive, one connection per client) so the figures are the server's, not
an HTTP library's. Reported: requests/s, p50/p99 latency, errors (any answer
but a 200 with the whole body).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from reconciler.dev.seaweed import SeaweedServer
from reconciler.dev.tinyjpeg import tiny_jpeg

ACTOR = "0500_bench_40_male"
# A demo-sized actor: 10 images, a ~5 KB document (issue 28 measured the 40 ms stall on 4.7 KB).
SMALL_ACTOR, SMALL_IMAGES = "0042_bench_30_female", 10
PIXEL = str(Path(sys.executable).with_name("pixel"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _world(server: SeaweedServer, work: Path, images: int) -> tuple[Path, dict[str, str]]:
    bucket = server.create_bucket(f"bench-service-{os.getpid()}")
    root = work / "service"
    for actor, count in ((ACTOR, images), (SMALL_ACTOR, SMALL_IMAGES)):
        directory = root / "data" / "actors" / actor / "training_data"
        directory.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            (directory / f"{actor}_{index}.jpg").write_bytes(tiny_jpeg(index % 256, f"bench {actor} {index}"))
    specs = root / "specs"
    specs.mkdir(exist_ok=True)
    (specs / "actors.yaml").write_text(
        "stores:\n"
        "  assets: {type: s3, bucket: " + bucket + ", endpoint: " + server.endpoint + ", region: us-east-1,\n"
        "           addressing_style: path, checksum: when_required}\n"
        f"  workspace: {{type: local, root: {root}}}\n"
        "actors:\n"
        "  local: workspace:data/actors\n"
        "  s3: assets:system_actors/training_data/\n"
        "  manifests: workspace:data/actor_manifests\n"
        "  discover: '^(?P<id>\\d{4})_.+$'\n"
    )
    env = server.child_env({"PIXEL_CACHE_DIR": str(root / "cache")})
    done = subprocess.run(
        [PIXEL, "apply", "--specs", str(specs), "--auto-approve", "-q"], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"pixel apply for the service bench failed: {done.stderr[-2000:]}")
    return specs, env


async def _client(host: str, port: int, path: str, count: int, latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode()
    try:
        for _ in range(count):
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length")
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not lines[0].startswith("HTTP/1.1 200") or not body.endswith(b"}"):
                errors.append(lines[0])
    except (OSError, asyncio.IncompleteReadError, StopIteration, ValueError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        writer.close()


async def _load(host: str, port: int, path: str, clients: int, requests: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    await _client(host, port, path, 1, [], errors)  # warm-up: the first answer builds and caches the document
    start = time.perf_counter()
    await asyncio.gather(*(_client(host, port, path, requests, latencies, errors) for _ in range(clients)))
    seconds = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else latencies * 99 or [0.0] * 99
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "requests_per_s": len(latencies) / seconds if seconds else 0.0,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "errors": len(errors) + (clients * requests - len(latencies)),
        "first_errors": errors[:3],
    }


def load_main() -> None:
    """The load generator's own process: `python -c 'from bench.service import load_main; load_main()' ...`."""
    host, port, path, clients, requests = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    print(json.dumps(asyncio.run(_load(host, port, path, clients, requests))))


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pixel serve exited {proc.returncode} before answering")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"pixel serve did not listen on port {port} within {timeout} s")


# wrk's own summary as one JSON line (its Lua `done` hook), so nothing parses its human-readable table.
_WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests": %d, "seconds": %.6f, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, e.connect + e.read + e.write + e.timeout + e.status))
end
"""
WRK_CONNECTIONS = (1, 10, 50)


def wrk_rows(port: int, paths: dict[str, str], seconds: int, work: Path) -> list[dict[str, Any]] | None:
    """wrk (a C load generator, keep-alive) at 1, 10 and 50 connections on each route; None when wrk is absent."""
    wrk = shutil.which("wrk")
    if wrk is None or seconds <= 0:
        return None
    script = work / "wrk_summary.lua"
    script.write_text(_WRK_SCRIPT)
    rows = []
    for route, path in paths.items():
        for connections in WRK_CONNECTIONS:
            argv = [wrk, f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                    f"http://127.0.0.1:{port}{path}"]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
            if done.returncode != 0:
                raise RuntimeError(f"wrk failed on {path}: {done.stderr[-2000:]}")
            summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
            rate = summary["requests"] / summary["seconds"] if summary["seconds"] else 0.0
            rows.append({**summary, "route": route, "connections": connections, "requests_per_s": rate})
    return rows


def service_row(
    server: SeaweedServer, work: Path, *, clients: int, requests: int, images: int = 500, wrk_seconds: int = 0
) -> dict[str, Any]:
    specs, env = _world(server, work, images)
    port = _free_port()
    serve = subprocess.Popen(
        [PIXEL, "serve", "--specs", str(specs), "--port", str(port), "-q"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(port, serve)
        path = f"/api/actors/{ACTOR[:4]}/training-data"
        script = "from bench.service import load_main; load_main()"
        argv = [sys.executable, "-c", script, "127.0.0.1", str(port), path, str(clients), str(requests)]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if done.returncode != 0:
            raise RuntimeError(f"the service load generator failed: {done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(done.stdout)
        routes = {
            f"actor, {SMALL_IMAGES} images": f"/api/actors/{SMALL_ACTOR[:4]}/training-data",
            f"actor, {images} images": path,
            "/api/status": "/api/status",
            "/ (status page)": "/",
        }
        result["wrk"] = wrk_rows(port, routes, wrk_seconds, work)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    return {**result, "clients": clients, "requests_per_client": requests, "images": images}
