"""The saved-plan row: write a 200,000-action plan with `pixel plan -out`'s code, read it back and check it.

The read is `pixel apply FILE`'s and `pixel show FILE`'s: the framed file streamed through the schema check and the
guard digest (reconciler/plan/savedfile.py). Its CPU seconds are reported beside the wall clock, since on a shared
machine the CPU figure is the one two runs agree on.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from reconciler.commands import planfile
from reconciler.model import Action, ActionKind, Change, ObjectRef, Plan, Precondition


def synthetic_plan(n: int) -> Plan:
    """`n` actions as pixel writes them: creates If-None-Match, updates and deletes If-Match."""
    actions = []
    for i in range(n):
        key = f"datasets/gdrive/raw/part-{i % 13:02d}/shard-{i:07d}.jsonl"
        md5 = f"{i:032x}"
        kind, change, pre = [
            (ActionKind.UPLOAD, Change.CREATE, Precondition(target_absent=True, source_size=1_000 + i, source_md5=md5)),
            (ActionKind.UPLOAD, Change.UPDATE, Precondition(target_etag=f"{i + 1:032x}", source_size=1_000 + i)),
            (ActionKind.COPY, Change.CREATE, Precondition(target_absent=True, source_etag=md5)),
            (ActionKind.DELETE, Change.DELETE, Precondition(target_etag=md5)),
        ][i % 4]
        actions.append(
            Action(
                id=f"{kind.value}:s3:{key}",
                kind=kind,
                change=change,
                mapping=f"mapping-{i % 7}",
                target=ObjectRef("s3", key),
                reason="synthetic",
                source=ObjectRef("disk", key) if kind is ActionKind.UPLOAD else None,
                size=1_000 + i,
                md5=None if kind is ActionKind.DELETE else md5,
                precondition=pre,
            )
        )
    return Plan(actions=tuple(actions), edges=(), findings=(), spec_digest="0" * 64)


def measure(n: int = 200_000) -> dict[str, float]:
    plan = synthetic_plan(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.json"
        start = time.perf_counter()
        planfile.dump(plan, path)
        written = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        back = planfile.load_saved(path).plan
        read, read_cpu = time.perf_counter() - start, time.process_time() - cpu
        size = path.stat().st_size
    if back != plan:
        raise RuntimeError("the saved plan did not read back equal")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "actions": n,
        "write_seconds": written,
        "read_seconds": read,
        "read_cpu_seconds": read_cpu,
        "bytes": size,
        "rss_mib": rss,
    }


def main() -> None:
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)))


if __name__ == "__main__":
    main()
