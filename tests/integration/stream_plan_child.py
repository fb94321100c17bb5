"""A streamed plan in a child process, for the crash test: `python -m tests.integration.stream_plan_child
OUT SPILL_PARENT N STOP_AT`.

Plans the million bench's world (every object changed, so N updates) through the streaming planner and
writes it to OUT. Once STOP_AT elements of the file are written it says so on stdout and waits for a line
on stdin, which the test never sends: it kills the process there, mid-write, by a condition it saw.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.million import _world
from reconciler.scale.observe import observe_spilled
from reconciler.scale.planfile import write_streamed
from reconciler.scale.planner import stream_plan
from reconciler.scale.spill import Spill


def main(out: Path, parent: Path, n: int, stop_at: int) -> None:
    desired, stores, hasher, _ = _world(n, 1.0, 1)

    def progress(written: int) -> None:
        if written == stop_at:
            print(f"written {written}", flush=True)
            sys.stdin.readline()

    with Spill(parent) as spill:
        observed = observe_spilled(desired, stores, hasher, spill)  # type: ignore[arg-type]
        print(f"spill {spill.directory}", flush=True)
        write_streamed(stream_plan(desired, observed, spill), out, progress=progress)
    print("done", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
