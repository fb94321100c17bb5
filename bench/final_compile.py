"""The final-dataset compile row: ~1 GiB of source JSONL compiled into shards, uploaded as they are written.

    python -m bench.final_compile ENDPOINT BUCKET WORK --mib 1024   -> prints JSON

Four registry datasets of ~1 KiB records (every 50th repeats an earlier id, so
dedupe works) are put in the bucket through pixel's S3Store (md5 recorded), then a
fresh child process plans and runs the compile action alone: it streams the
sources, writes shards of 64 MiB, uploads, verifies and releases each while the
next is being written, then the export and the manifest. The child reports its
own peak RSS (VmHWM), so the figure is the compile's, not the parent's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

SOURCES = ("alpha", "beta", "gamma", "delta")


def _spec(endpoint: str, bucket: str, work: Path) -> str:
    items = "\n".join(f"    - {{name: {n}, tier: processed, category: bench, format: jsonl}}" for n in SOURCES)
    return f"""stores:
  s3: {{type: s3, bucket: {bucket}, endpoint: "{endpoint}", region: us-east-1, addressing_style: path,
        checksum: when_required}}
  disk: {{type: local, root: "{work}"}}
tiers:
  processed: {{at: "s3:datasets/processed/"}}
datasets:
  items:
{items}
final_dataset:
  sources: [{", ".join(SOURCES)}]
  splits: {{train: 0.90, validation: 0.05, test: 0.05}}
  split_key: id
  shard: {{bytes: 64 MiB}}
  dedupe: true
  to: s3:final_dataset/
  compiled: final_dataset/compiled/final_training_dataset.jsonl
  manifest: {{key: final_dataset/manifest.json, local: "disk:kept/manifest.json"}}
  workdir: disk:staging
"""


def _write_sources(work: Path, mib: int) -> list[Path]:
    text = "x" * 900
    per_source = mib * 2**20 // len(SOURCES)
    paths = []
    serial = 0
    for name in SOURCES:
        path = work / "sources" / f"{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with path.open("wb", buffering=2**20) as handle:
            while written < per_source:
                serial += 1
                ident = serial - 25 if serial % 50 == 0 else serial  # a duplicate id now and then
                line = json.dumps({"id": ident, "source": name, "text": text, "n": serial}).encode() + b"\n"
                handle.write(line)
                written += len(line)
        paths.append(path)
    return paths


def _opener(path: Path) -> Callable[[], BinaryIO]:
    return lambda: path.open("rb")


def setup(endpoint: str, bucket: str, work: Path, mib: int) -> Path:
    from reconciler.model import S3StoreSpec
    from reconciler.observe import StreamingHasher
    from reconciler.stores.local import LocalStore
    from reconciler.stores.s3 import S3Store

    work.mkdir(parents=True, exist_ok=True)
    s3 = S3Store(S3StoreSpec("s3", bucket, endpoint=endpoint, region="us-east-1", addressing_style="path",
                             checksum="when_required"))
    local = LocalStore("disk", work / "sources")
    hasher = StreamingHasher()
    for path in _write_sources(work, mib):
        entry = local.stat(path.name)
        assert entry is not None
        md5 = hasher.md5(local, entry)
        s3.write(f"datasets/processed/bench/{path.name}", _opener(path), size=entry.size, md5=md5,
                 if_absent=s3.stat(f"datasets/processed/bench/{path.name}") is None)
        path.unlink()  # the compile reads S3, not these
    specs = work / "specs"
    specs.mkdir(exist_ok=True)
    (specs / "final.yaml").write_text(_spec(endpoint, bucket, work))
    return specs


def child(specs: str) -> None:
    """Plan, then run the compile action alone; print what it did and this process's peak RSS."""
    from reconciler.apply.final import FinalCompiler
    from reconciler.model import ActionKind
    from reconciler.spec import load_desired
    from reconciler.workflow import observe_and_plan, open_stores

    ws = open_stores(load_desired(Path(specs), os.environ))
    _, plan = observe_and_plan(ws)
    [action] = [a for a in plan.actions if a.kind is ActionKind.COMPILE]
    landed: list[float] = []
    start = time.perf_counter()
    compiler = FinalCompiler(ws.desired, ws.stores, on_shard=lambda key: landed.append(time.perf_counter() - start))
    compiler(action)
    seconds = time.perf_counter() - start
    with open("/proc/self/status") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    stats = compiler.last
    assert stats is not None
    print(json.dumps({
        "seconds": seconds,
        "source_bytes": action.size,
        "mb_per_s": action.size / seconds / 1e6,
        "records_read": stats.read,
        "duplicates": stats.duplicates,
        "written": stats.written,
        "shards_uploaded": stats.uploaded,
        "bytes_uploaded": stats.bytes_uploaded,
        # Overlap: the first shard is verified in S3 (and released) long before the compile ends.
        "first_shard_in_s3_s": landed[0] if landed else None,
        "rss_mib": hwm / 1024,
    }))


def run_final_compile(endpoint: str, bucket: str, work: Path, mib: int, env: dict[str, str]) -> dict[str, Any]:
    # The sources are put from this process: the server's throwaway credentials, as the child gets them.
    os.environ.update({name: value for name, value in env.items() if name.startswith("AWS_")})
    specs = setup(endpoint, bucket, work, mib)
    done = subprocess.run([sys.executable, "-m", "bench.final_compile", "child", str(specs)], env=env,
                          capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"final compile bench failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str]) -> int:
    if argv[:1] == ["child"]:
        child(argv[1])
        return 0
    import argparse

    from reconciler.dev.seaweed import SeaweedServer

    parser = argparse.ArgumentParser(prog="python -m bench.final_compile")
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / ".work" / "final")
    options = parser.parse_args(argv)
    with SeaweedServer() as server:
        bucket = server.create_bucket("bench-final")
        env = {**os.environ, **server.env()}
        print(json.dumps(run_final_compile(server.endpoint, bucket, options.work, options.mib, env), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
