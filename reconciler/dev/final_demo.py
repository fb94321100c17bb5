"""The final-dataset part of `make demo`: the published manifest's summary, current, then a rebuild with its reason.

Also writes the seed-003 files under ai/training_ready/data/ that the
`training_ready` mapping of specs/final_dataset.yaml uploads (and releases).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from reconciler.units import human_bytes

PIXEL = str(Path(sys.executable).with_name("pixel"))
TRAINING_READY = Path("ai") / "training_ready" / "data"
LOCAL_MANIFEST = TRAINING_READY / "final_dataset" / "manifest.json"

Say = Callable[[str], None]


def seed_training_ready(root: Path) -> list[Path]:
    """Seed 003's local datasets: small JSONL exports, a large package file, and a small one that stays."""
    base = root / TRAINING_READY
    rng = random.Random(3)
    files = {
        "generated/session_summaries.jsonl": b"".join(
            json.dumps({"id": f"s{i}", "summary": f"session {i}"}).encode() + b"\n" for i in range(20)
        ),
        "unified_6_component_dataset.jsonl": b'{"id": "u0", "components": 6}\n',
        "packages/lexicon.bin": rng.randbytes(1_200_000),  # over 1 MB: uploaded although not .jsonl
        "packages/README.txt": b"small and not .jsonl: not the mapping's\n",
    }
    written = []
    for rel, data in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        written.append(path)
    return written


def _pixel(args: list[str], specs: Path, env: Mapping[str, str], say: Say, expect: int) -> str:
    say(f"\n$ pixel {' '.join(args)}")
    done = subprocess.run(
        [PIXEL, args[0], "--specs", str(specs), "-q", *args[1:]],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    say(done.stdout.rstrip("\n"))
    if done.returncode != expect:
        say(done.stderr.rstrip("\n"))
        raise RuntimeError(f"pixel {' '.join(args)} exited {done.returncode}, expected {expect}")
    return done.stdout


def manifest_summary(path: Path) -> list[str]:
    document = json.loads(path.read_text(encoding="utf-8"))
    counts = document["counts"]
    lines = [
        f"{path}: build {document['build'][:12]}, created {document['created']}, "
        f"{len(document['sources'])} sources, {counts['read']} records read, {counts['duplicates']} duplicates dropped",
    ]
    for split, totals in document["splits"].items():
        lines.append(
            f"  {split:<11} {totals['shards']} shard(s), {totals['records']} records, {human_bytes(totals['bytes'])}"
        )
    for shard in document["shards"][:3]:
        lines.append(f"  {shard['s3_url']}  md5 {shard['md5'][:12]}…  {shard['records']} records")
    compiled = document["compiled"]
    lines.append(f"  export {compiled['s3_url']} ({human_bytes(compiled['size'])}, {compiled['records']} records)")
    return lines


def run_final_demo(specs: Path, root: Path, env: Mapping[str, str], say: Say = print) -> None:
    """After the world demo's apply published the final dataset: show it, show it current, change a source."""
    say("\n== The final training dataset ==")
    for line in manifest_summary(root / LOCAL_MANIFEST):
        say(line)
    _pixel(["plan", "--detailed-exitcode"], specs, env, say, 0)
    say("The published final dataset is current: the plan has nothing to do.")

    source = root / "gdrive" / "raw" / "organise" / "clinical_cot.jsonl"
    say(f"\nOne source dataset changes: a record appended to {source.relative_to(root)}")
    with source.open("ab") as handle:
        handle.write(b'{"prompt": "What would a small next step look like?", "reasoning": ["scale", "plan"]}\n')
    out = _pixel(["plan", "--detailed-exitcode"], specs, env, say, 2)
    if "clinical_cot changed: md5" not in out:
        raise RuntimeError("the plan does not show the final dataset's rebuild with its reason")
    _pixel(["apply", "--auto-approve"], specs, env, say, 0)
    for line in manifest_summary(root / LOCAL_MANIFEST):
        say(line)
    _pixel(["plan", "--detailed-exitcode"], specs, env, say, 0)
    say("Rebuilt, published, current again.")
