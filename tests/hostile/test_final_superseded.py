"""Issue 23.9: a final dataset of more than 100 shards rebuilds after a one-record change under the default guards.

Every shard of the previous build is a delete of the rebuild's plan (which ones the new build reuses
is only known once it is compiled), so `--max-delete 100` used to refuse the whole plan, blocking
every other mapping with it. Those deletes run only once the new manifest is verified in place and
keep what it names: they are counted apart, under `--max-superseded`, which a saved plan records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.commands.apply import apply
from reconciler.model import ActionKind
from reconciler.plan import saved_checks, serialize
from reconciler.plan.guards import DEFAULT_MAX_DELETE, GuardLimits, check
from tests.integration.final_world import COMPILED, MANIFEST, FinalWorld, jsonl, records

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def world(tmp_path: Path, bucket: str, s3_client: Any, seaweed: Any, aws_env: dict[str, str]) -> Iterator[FinalWorld]:
    w = FinalWorld(tmp_path / "disk", tmp_path / "specs", bucket, seaweed.endpoint, s3_client)
    w.root.mkdir()
    w.put_source("a", jsonl(records("a", 240)))
    w.put_source("b", jsonl(records("b", 20, start=1000)))
    w.write_specs(["a", "b"], shard="{records: 2}", splits="{train: 0.9, test: 0.1}")
    assert apply(w.specs, auto_approve=True, parallelism=4) == 0
    yield w


def test_a_one_record_change_rebuilds_more_than_100_shards_under_the_default_guards(world: FinalWorld) -> None:
    old = world.manifest()
    assert len(old["shards"]) > DEFAULT_MAX_DELETE
    world.put_source("b", jsonl(records("b", 19, start=1000) + records("b", 1, start=1019, text="edited")))

    ws, observed, plan = world.plan()
    superseded = [a for a in plan.actions if a.kind is ActionKind.DELETE]
    assert len(superseded) > DEFAULT_MAX_DELETE
    guarded = check(ws.desired, observed, plan, GuardLimits())
    assert guarded.errors == ()
    # Counted apart: not even one plain delete is allowed, and the plan still goes through.
    assert check(ws.desired, observed, plan, GuardLimits(max_delete=0)).errors == ()
    [compile_action] = [a for a in plan.actions if a.kind is ActionKind.COMPILE]
    assert f"then {len(superseded)} superseded shard(s) deleted" in compile_action.reason
    assert "counted apart from --max-delete, under --max-superseded" in compile_action.reason

    assert apply(world.specs, auto_approve=True, parallelism=4) == 0
    new = world.manifest()
    assert set(world.listed()) == {s["key"] for s in new["shards"]} | {MANIFEST, COMPILED}
    _, _, after = world.plan()
    assert after.actions == ()


def test_the_superseded_limit_refuses_and_a_saved_plan_keeps_it(world: FinalWorld) -> None:
    world.put_source("a", jsonl(records("a", 239) + records("a", 1, start=239, text="edited")))
    ws, observed, plan = world.plan()
    count = sum(1 for a in plan.actions if a.kind is ActionKind.DELETE)
    tight = GuardLimits(max_superseded=count - 1)
    [error] = check(ws.desired, observed, plan, tight).errors
    assert f"{count} superseded final-dataset shards, more than --max-superseded {count - 1}" in error

    # The file records the limit it was made with; apply FILE derives the guards again with it.
    saved = serialize.loads_saved(serialize.dumps(check(ws.desired, observed, plan, tight), limits=tight))
    assert saved.limits.max_superseded == count - 1
    assert any("--max-superseded" in p for p in saved_checks.problems(ws.desired, saved.plan, saved.limits))
    roomy = GuardLimits(max_superseded=count)
    saved = serialize.loads_saved(serialize.dumps(check(ws.desired, observed, plan, roomy), limits=roomy))
    assert saved_checks.problems(ws.desired, saved.plan, saved.limits) == []
