"""The read side, last in `make demo`: datasets listed and streamed by name, by `pixel cat` and the Python API.

Runs after the world demo organised the registry's datasets into the processed tier. Then three short acts
of training-grade reads: 2 ranks × 2 DataLoader worker processes with equal counts per rank, a one-object
dataset shuffled by seed, and reads from the verified cache while the S3 server is stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

PIXEL = str(Path(sys.executable).with_name("pixel"))
SHARDS = "cot_reasoning/*.jsonl"
COLD = "counseling_dialogues"  # registered, and read by nothing earlier in the demo: never in its cache

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


def _child(args: list[str], env: Mapping[str, str], say: Callable[[str], None], what: str) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    say(done.stdout.rstrip("\n"))
    if done.returncode != 0:
        say(done.stderr.rstrip("\n"))
        raise RuntimeError(f"{what} exited {done.returncode}")


def run_loader_demo(
    specs: Path,
    env: Mapping[str, str],
    say: Callable[[str], None] = print,
    *,
    halt: Callable[[], None],
    resume: Callable[[], None],
) -> None:
    """`halt` and `resume` stop the S3 server and start it again (same data, same port) for the offline act."""
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
        _child([sys.executable, "-c", snippet], full_env, say, "the Python API part of the loader demo")

        datasets = str(Path(cache) / "datasets")

        def act(name: str) -> None:
            argv = [sys.executable, "-m", "reconciler.dev.loader_demo", name, str(specs), datasets]
            _child(argv, full_env, say, f"the {name} act")

        say("\nTraining-grade reads: equal records per rank, record-level shuffle, offline from the verified cache")
        act("ranks")
        act("shuffle")
        halt()
        say("\nThe S3 server is stopped now (an outage: its data is kept).")
        try:
            act("offline")
        finally:
            resume()
        say("The S3 server is back.")


# The acts below each run in a child process (`python -m reconciler.dev.loader_demo ACT SPECS CACHE`), like the
# snippet above: the child has the throwaway server's environment, and the demo process stays free to stop and
# restart the server between acts.

def _emulated_worker(ds: Any, worker: int, workers: int, out: Any) -> None:
    """One DataLoader worker process: torch is not installed, so this is what get_worker_info() would say."""
    ds.worker_info = lambda: SimpleNamespace(id=worker, num_workers=workers)
    out.put((ds.rank, worker, sum(1 for _ in ds)))


def act_ranks(specs: str, cache: str) -> None:
    """2 ranks × 2 worker processes over the cot_reasoning shards: every rank the same count, known up front."""
    from reconciler.loader import load_dataset

    world, workers = 2, 2
    context: Any = multiprocessing.get_context("fork")  # DataLoader's default on Linux: workers inherit the dataset
    out = context.Queue()
    processes, planned = [], []
    for rank in range(world):
        ds = load_dataset(SHARDS, specs, cache_dir=cache, rank=rank, world_size=world, shuffle=True, seed=7)
        planned.append(len(ds))
        processes += [context.Process(target=_emulated_worker, args=(ds, w, workers, out)) for w in range(workers)]
    for process in processes:
        process.start()
    results = sorted(out.get(timeout=300) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        if process.exitcode != 0:
            raise RuntimeError(f"a DataLoader worker process exited {process.exitcode}")
    total = len(load_dataset(SHARDS, specs, cache_dir=cache))
    print(f"{SHARDS}: {total} records; {world} ranks x {workers} DataLoader worker processes, shuffle=True seed=7")
    read = 0
    for rank in range(world):
        counts = [n for r, _w, n in results if r == rank]
        read += sum(counts)
        print(f"  rank {rank}: len(ds) = {planned[rank]} before the first record; "
              f"its workers yielded {' + '.join(map(str, counts))} = {sum(counts)}")
    print(f'  equal per rank; partition="drop" left out {total - read} record(s), the remainder over {world} ranks')


def act_shuffle(specs: str, cache: str) -> None:
    """A one-object dataset shuffles its records: one order per seed."""
    from reconciler.loader import load_dataset

    def ids(**options: Any) -> list[Any]:
        return [r["id"] for r in load_dataset("priority_mix", specs, cache_dir=cache, **options)]

    print(f"priority_mix (one object): file order {ids()}; shuffle=True seed=1 {ids(shuffle=True, seed=1)}, "
          f"seed=4 {ids(shuffle=True, seed=4)}")


def act_offline(specs: str, cache: str) -> None:
    """With the S3 server stopped: warm objects are read from the verified cache, a cold one fails clearly."""
    from reconciler.loader import load_dataset

    ds = load_dataset("priority_mix", specs, cache_dir=cache, offline=True)
    print(f"offline=True  priority_mix: {[r['id'] for r in ds]} from the verified cache; S3 not contacted")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset("priority_mix", specs, cache_dir=cache)
        ids = [r["id"] for r in ds]
    print(f"S3 down, offline=False, priority_mix: {ids}, with {len(caught)} warning(s):")
    for warning in caught:
        # "S3 is unreachable (<the request and its error, one long line>): <what is served instead>"
        head, _, served = str(warning.message).partition(" (")
        print(f"    {warning.category.__name__}: {head} (...): {served.rpartition('): ')[2]}")
    try:
        cold = load_dataset(COLD, specs, cache_dir=cache, offline=True)
        print(f"offline=True  {COLD}: unexpectedly read {sum(1 for _ in cold)} record(s)")
    except Exception as exc:  # the point of the act: show whichever error the user would see, verbatim
        print(f"offline=True  {COLD} (never read, so not cached) fails:\n    {type(exc).__name__}: {exc}")
        return
    raise RuntimeError(f"{COLD} was read offline although it was never cached")


ACTS: dict[str, Callable[[str, str], None]] = {"ranks": act_ranks, "shuffle": act_shuffle, "offline": act_offline}

if __name__ == "__main__":
    ACTS[sys.argv[1]](sys.argv[2], sys.argv[3])
