"""A streamed apply in a child process, for the crash test: `python -m tests.integration.stream_apply_child
SPECS PLAN_FILE BATCH`.

Applies PLAN_FILE as `pixel apply --scale stream` does, BATCH actions to a batch. After the first batch it
says so on stdout and waits for a line on stdin, which the test never sends: it kills the process there,
mid-apply with the lock held, by a condition it saw.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from reconciler.apply.executor import ApplyResult, LocalExecutor, Reporter
from reconciler.apply.runner import ByteCounts
from reconciler.apply.session import LockOptions
from reconciler.choices import OutputFormat
from reconciler.commands.scale import apply_streamed
from reconciler.model import Desired, Plan
from reconciler.plan.guards import GuardLimits
from reconciler.stores.base import Store


class _PausingAfterFirst:
    def __init__(self) -> None:
        self._inner = LocalExecutor(2)
        self._batches = 0

    def check(self, plan: Plan, desired: Desired) -> None:
        self._inner.check(plan, desired)

    def run(
        self, plan: Plan, desired: Desired, stores: Mapping[str, Store], *, reporter: Reporter, stop: threading.Event
    ) -> tuple[ApplyResult, ByteCounts]:
        result, counts = self._inner.run(plan, desired, stores, reporter=reporter, stop=stop)
        self._batches += 1
        if self._batches == 1:
            print(f"ran {len(result.done)}", flush=True)
            sys.stdin.readline()
        return result, counts


def main(specs: Path, plan_file: Path, batch: int) -> int:
    return apply_streamed(
        specs,
        plan_file,
        parallelism=2,
        lock=LockOptions(),
        executor=_PausingAfterFirst(),
        limits=GuardLimits(),
        limits_given=frozenset(),
        output_format=OutputFormat.TEXT,
        batch=batch,
    )


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
