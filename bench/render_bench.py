"""The PR-comment row: render a 200,000-action plan as markdown (it must stay under 65,000 characters)."""

from __future__ import annotations

import json
import resource
import time

from reconciler.model import Action, ActionKind, Change, Finding, FindingKind, ObjectRef, Plan
from reconciler.plan.render_markdown import render_markdown


def synthetic_plan(n: int) -> Plan:
    """`n` actions over a few mappings and prefixes, deletes included: the shape of a large real plan."""
    kinds = (
        (ActionKind.UPLOAD, Change.CREATE),
        (ActionKind.UPLOAD, Change.UPDATE),
        (ActionKind.COPY, Change.CREATE),
        (ActionKind.DELETE, Change.DELETE),
    )
    actions = []
    for i in range(n):
        kind, change = kinds[i % len(kinds)]
        key = f"datasets/gdrive/raw/part-{i % 13:02d}/shard-{i:07d}.jsonl"
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
            )
        )
    findings = tuple(
        Finding(FindingKind.ORPHAN, "mapping-0", f"orphan-{i}.jpg", "no manifest lists it") for i in range(n // 100)
    )
    return Plan(actions=tuple(actions), edges=(), findings=findings)


def measure(n: int = 200_000) -> dict[str, float]:
    plan = synthetic_plan(n)
    start = time.perf_counter()
    text = render_markdown(plan)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"actions": n, "seconds": seconds, "chars": len(text), "rss_mib": rss}


def main(n: int = 200_000) -> None:
    print(json.dumps(measure(n)))


if __name__ == "__main__":
    main()
