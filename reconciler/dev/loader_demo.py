"""The read side, last in `make demo`: datasets listed and streamed by name, by `pixel cat` and the Python API.

Runs after the world demo organised the registry's datasets into the processed tier.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

PIXEL = str(Path(sys.executable).with_name("pixel"))

API_SNIPPET = '''\
from reconciler.loader import load_dataset

where = dict(specs={specs!r}, cache_dir={cache!r})

ds = load_dataset("priority_mix", **where)
print("priority_mix:", [r["id"] for r in ds], "| downloaded", ds.cache.downloads, "object(s)")
again = load_dataset("priority_mix", **where)
print("again:       ", [r["id"] for r in again], "| from the verified cache:", again.cache.hits, "hit(s)")

shards = load_dataset("cot_reasoning/*.jsonl", **where)
print("cot_reasoning/*.jsonl:", len(shards.objects), "objects,", sum(1 for _ in shards), "records")

rank0 = load_dataset("priority_mix", **where, rank=0, world_size=2)
rank1 = load_dataset("priority_mix", **where, rank=1, world_size=2)
print("rank 0 of 2:", [r["id"] for r in rank0], " rank 1 of 2:", [r["id"] for r in rank1])

ds = load_dataset("priority_mix", **where)
first = next(iter(ds))
state = ds.state_dict()  # exactly the one record yielded so far; JSON-able, save it with your checkpoint
resumed = load_dataset("priority_mix", **where)
resumed.load_state_dict(state)
print("resume after 1 record:", [first["id"]], "+", [r["id"] for r in resumed])
'''


def run_loader_demo(specs: Path, env: Mapping[str, str], say: Callable[[str], None] = print) -> None:
    full_env = {**os.environ, **env}
    with tempfile.TemporaryDirectory(prefix="pixel-demo-cache-") as cache:
        full_env["PIXEL_CACHE_DIR"] = cache
        steps = (
            ["datasets"],
            ["cat", "clinical_cot", "--limit", "2"],
            ["cat", "cot_reasoning/*.jsonl", "--limit", "3"],
        )
        for args in steps:
            say(f"\n$ pixel {' '.join(args)}")
            done = subprocess.run([PIXEL, args[0], "--specs", str(specs), *args[1:]], env=full_env,
                                  capture_output=True, text=True, timeout=120, check=False)
            say(done.stdout.rstrip("\n"))
            if done.returncode != 0:
                say(done.stderr.rstrip("\n"))
                raise RuntimeError(f"pixel {args[0]} exited {done.returncode}")
        snippet = API_SNIPPET.format(specs=str(specs), cache=str(Path(cache) / "datasets"))
        say("\nThe Python API (python -c ...):\n" + "\n".join(f"    {line}" for line in snippet.splitlines()))
        say("")
        done = subprocess.run([sys.executable, "-c", snippet], env=full_env, capture_output=True, text=True,
                              timeout=120, check=False)
        say(done.stdout.rstrip("\n"))
        if done.returncode != 0:
            say(done.stderr.rstrip("\n"))
            raise RuntimeError("the Python API part of the loader demo failed")
