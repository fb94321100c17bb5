"""Issue 23.1: a final dataset whose `to` holds what others own is refused, and its deletes touch only its own keys.

`to: s3:datasets/` while the processed tier is at `datasets/processed/` used to pass `pixel validate`;
the first apply then deleted the final dataset's own sources and an unrelated object as "left by an
interrupted build". Both halves are held here: the specs are refused with one located error naming
the owner, and a plan made with the check bypassed deletes only keys the final dataset wrote.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.apply import execute
from reconciler.apply.runner import build_runner
from reconciler.cli import main
from reconciler.manifests.final import parse, shard_name_md5
from reconciler.model import ActionKind, Entry, FindingKind
from reconciler.plan import guards, plan
from reconciler.plan.graph import build_graph
from reconciler.workflow import observe_and_plan
from reconciler.workspace import Workspace
from tests.integration.final_world import FinalWorld, jsonl, records
from tests.unit.final.world import MD5, desired, observed, published, source_entries

SPEC = """\
stores:
  lake: {type: s3, bucket: lake, endpoint: "http://127.0.0.1:1"}
  same: {type: s3, bucket: lake, endpoint: "http://127.0.0.1:1"}
  disk: {type: local, root: data}
tiers:
  processed: {at: "lake:datasets/processed/"}
datasets:
  items:
    - {name: alpha, tier: processed, category: c, format: jsonl}
final_dataset:
  sources: [alpha]
  splits: {train: 0.9, test: 0.1}
  to: TO
  compiled: COMPILED
  manifest: {key: MANIFEST, local: "disk:kept/manifest.json"}
  workdir: disk:work
"""


def _spec(to: str, extra: str = "", *, tier: str = "datasets/processed/") -> str:
    prefix = to.partition(":")[2]
    # The tier is moved before `to` goes in, so a `to` that spells the default tier is not moved with it.
    return (
        SPEC.replace("datasets/processed/", tier).replace("TO", to).replace("COMPILED", f"{prefix}compiled/all.jsonl")
        .replace("MANIFEST", f"{prefix}manifest.json") + extra
    )


@pytest.mark.parametrize(
    ("spec", "owner"),
    [
        (_spec("lake:datasets/"), 'tier "processed" (lake:datasets/processed/)'),
        (_spec("lake:datasets/processed/final/"), 'tier "processed" (lake:datasets/processed/)'),
        (_spec("same:datasets/"), 'tier "processed" (lake:datasets/processed/)'),  # one bucket, two names
        (_spec("lake:final/", "mappings:\n  - {name: m, from: 'disk:x', to: 'lake:final/train/'}\n"),
         'mapping "m" (lake:final/train/)'),
        (_spec("lake:people/final/", "actors: {local: 'disk:actors', s3: 'lake:people/', manifests: 'disk:m'}\n"),
         "the actors (lake:people/)"),
        (_spec("lake:runs/").replace("endpoint: \"http://127.0.0.1:1\"}", "endpoint: \"http://127.0.0.1:1\", "
                                     "lock_key: runs/lock/pixel.lock}", 1),
         "pixel's own space \"runs/lock/\""),
        (_spec("lake:reports/").replace("endpoint: \"http://127.0.0.1:1\"}", "endpoint: \"http://127.0.0.1:1\", "
                                        "inventory: {bucket: lake, prefix: reports/inv}}", 1),
         "store \"lake\"'s S3 Inventory reports (lake:reports/inv/lake/)"),
    ],
    ids=["holds-a-tier", "inside-a-tier", "same-bucket-other-store", "holds-a-mapping", "inside-the-actors",
         "holds-the-lock-folder", "holds-inventory-reports"],
)
def test_validate_refuses_a_to_overlapping_anything_owned_with_one_located_error(
    tmp_path: Path, spec: str, owner: str
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "final.yaml").write_text(spec)
    result = CliRunner().invoke(main, ["validate", "--specs", str(specs)], catch_exceptions=False)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "final.yaml:" in line]
    line = spec.splitlines().index(next(t for t in spec.splitlines() if t.startswith("  to: "))) + 1
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"specs/final.yaml:{line}: final_dataset.to: ") or (
        f"final.yaml:{line}: final_dataset.to: " in errors[0]
    ), errors[0]
    assert f"overlaps {owner}" in errors[0], errors[0]


@pytest.fixture
def world(tmp_path: Path, bucket: str, s3_client: Any, seaweed: Any, aws_env: dict[str, str]) -> Iterator[FinalWorld]:
    w = FinalWorld(tmp_path / "disk", tmp_path / "specs", bucket, seaweed.endpoint, s3_client)
    w.root.mkdir()
    w.put_source("a", jsonl(records("a", 120)))
    w.put_source("b", jsonl(records("b", 30, start=500)))
    w.write_specs(["a", "b"])
    yield w


@pytest.mark.integration
def test_with_the_check_bypassed_a_rebuild_deletes_only_keys_the_final_dataset_wrote(world: FinalWorld) -> None:
    """Defence in depth: `to` widened to `datasets/` behind validation's back, on SeaweedFS."""
    unrelated = {"datasets/notes/keep.txt": b"someone else's", "datasets/train/notes.jsonl": b'{"x": 1}\n'}
    for key, body in unrelated.items():
        world.client.put_object(Bucket=world.bucket, Key=key, Body=body)
    # A shard an interrupted build of this dataset uploaded: its name is the shard scheme's, md5 and all.
    leftover_body = b'{"id":"old"}\n'
    leftover = f"datasets/train/shard-00009-{hashlib.md5(leftover_body).hexdigest()[:12]}.jsonl"
    world.client.put_object(Bucket=world.bucket, Key=leftover, Body=leftover_body)
    sources = {k: world.get(k) for k in world.listed("datasets/processed/")}

    ws = world.workspace()
    final = ws.desired.final
    assert final is not None
    widened = dataclasses.replace(
        final, prefix="datasets/", compiled_key="datasets/compiled/all.jsonl", manifest_key="datasets/manifest.json"
    )
    bypassed = Workspace(dataclasses.replace(ws.declared, final=widened), ws.stores)
    observed, plan = observe_and_plan(bypassed)
    plan = guards.check(bypassed.desired, observed, plan, guards.GuardLimits())
    deletes = sorted(a.target.key for a in plan.actions if a.kind is ActionKind.DELETE)
    assert deletes == [leftover]
    assert plan.applyable, plan.errors
    # What is not the final dataset's is reported, not deleted.
    reported = {f.key for f in plan.findings if f.mapping == "final_dataset"}
    assert {f"s3:{k}" for k in [*unrelated, *sources]} <= reported

    result = execute(build_graph(plan), build_runner(bypassed.desired, ws.stores), parallelism=4)
    assert result.ok, [o.error for o in result.failed]
    for key, body in {**unrelated, **sources}.items():
        assert world.get(key) == body, key
    assert leftover not in world.listed("datasets/")
    assert "datasets/manifest.json" in world.listed("datasets/")


@pytest.mark.integration
def test_shards_of_a_dropped_split_stay_the_datasets_own_through_the_manifest_history(world: FinalWorld) -> None:
    """The deletes after a rebuild are interrupted: the next plan still deletes the old shards, and only them."""
    world.compile()
    old = {s["key"] for s in world.manifest()["shards"] if s["split"] == "validation"}
    assert old
    stranger = "final_dataset/validation/notes.txt"
    world.client.put_object(Bucket=world.bucket, Key=stranger, Body=b"not a shard")
    world.write_specs(["a", "b"], splits="{train: 0.9, test: 0.1}")
    world.compile()  # the new manifest lands; its plan's deletes never run (a kill -9 right after)
    history = set(world.manifest()["history"])
    assert history >= old and stranger not in history

    _, _, plan = world.plan()
    deletes = {a.target.key for a in plan.actions if a.kind is ActionKind.DELETE}
    assert deletes == history, deletes
    assert f"s3:{stranger}" in {f.key for f in plan.findings}


_SEGMENTS = st.sampled_from(["datasets", "processed", "final", "train", "x"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tier=st.lists(_SEGMENTS, min_size=1, max_size=3), to=st.lists(_SEGMENTS, min_size=1, max_size=3))
def test_to_is_refused_exactly_when_it_and_a_tier_hold_one_another(
    tmp_path: Path, tier: list[str], to: list[str]
) -> None:
    tier_prefix, to_prefix = "/".join(tier) + "/", "/".join(to) + "/"
    specs = tmp_path / "law"
    specs.mkdir(exist_ok=True)
    spec = _spec(f"lake:{to_prefix}", tier=tier_prefix)
    (specs / "final.yaml").write_text(spec)
    result = CliRunner().invoke(main, ["validate", "--specs", str(specs)], catch_exceptions=False)
    overlaps = tier_prefix.startswith(to_prefix) or to_prefix.startswith(tier_prefix)
    refused = f'overlaps tier "processed" (lake:{tier_prefix})' in result.stderr
    assert refused == overlaps, result.stderr
    if not overlaps:
        assert "final_dataset.to" not in result.stderr, result.stderr


_KEYS = st.one_of(
    st.builds(lambda split, n, md5: f"final_dataset/{split}/shard-{n:05d}-{md5}.jsonl",
              st.sampled_from(["train", "validation", "test", "old"]), st.integers(0, 3),
              st.sampled_from(["e" * 12, "0123456789ab", "ffffffffffff"])),
    st.builds(lambda rest: f"final_dataset/{rest}", st.sampled_from(
        ["train/notes.txt", "readme.md", "train/shard-1-abc.jsonl", "compiled/other.jsonl", "test/shard-00001.jsonl"])),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.sets(_KEYS, max_size=8), history=st.sets(_KEYS, max_size=3), rebuild=st.booleans())
def test_a_plan_deletes_only_keys_the_dataset_wrote_and_reports_the_rest(
    tmp_path: Path, keys: set[str], history: set[str], rebuild: bool
) -> None:
    """The law behind the defence: whatever lies under the prefix, a delete is of a key a manifest names, its
    history lists or the shard scheme makes (a declared split, shard-N-md5[:12].jsonl); the rest is a finding."""
    d = desired(tmp_path)
    final = d.final
    assert final is not None
    manifest, objects = published(d, history=sorted(history))
    extra = {k: Entry(k, 3, md5=(k.rsplit("-", 1)[-1][:12] + "0" * 20) if k.endswith("jsonl") else None, etag="t")
             for k in keys}
    md5s = {**MD5, "alpha": "1" * 32} if rebuild else MD5
    p = plan(d, observed(manifest, {**objects, **extra}, source_entries(md5s)))
    wrote = parse(manifest).written()
    deleted = {a.target.key for a in p.actions if a.kind is ActionKind.DELETE}
    for key in deleted:
        assert key in wrote or shard_name_md5(final, key) is not None, key
    unmanaged = {f.key for f in p.findings if f.kind is FindingKind.UNMANAGED}
    for key in extra:
        ours = key in wrote or shard_name_md5(final, key) is not None
        assert (f"lake:{key}" in unmanaged) == (not ours), key
        if ours and key not in {s.key for s in parse(manifest).shards}:
            assert key in deleted, key
