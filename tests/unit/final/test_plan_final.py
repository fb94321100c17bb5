"""The final-dataset plan pass: current means no action; otherwise one compile with its reasons, deletes after it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from reconciler.model import Action, ActionKind, Entry, Plan
from reconciler.plan import plan, saved_checks, serialize
from reconciler.plan.guards import GuardLimits, check
from tests.unit.final.world import MD5, desired, observed, published, source_entries


def _compile(p: Plan) -> Action:
    [action] = [a for a in p.actions if a.kind is ActionKind.COMPILE]
    return action


def test_unchanged_recipe_and_sources_is_current(tmp_path: Path) -> None:
    d = desired(tmp_path)
    manifest, objects = published(d)
    assert plan(d, observed(manifest, objects)).actions == ()


def test_not_published_compiles_and_pins_its_inputs(tmp_path: Path) -> None:
    d = desired(tmp_path)
    p = plan(d, observed(None, {}))
    action = _compile(p)
    assert action.reason.startswith("not published yet (no final_dataset/manifest.json): compiles 2 source(s)")
    assert action.precondition.target_absent and action.precondition.source_md5
    assert action.target.key == "final_dataset/manifest.json"


def test_a_changed_source_is_the_reason_and_the_old_shards_are_deleted_after_the_compile(tmp_path: Path) -> None:
    d = desired(tmp_path)
    manifest, objects = published(d)
    stray = Entry("final_dataset/test/shard-00003-bbbbbbbbbbbb.jsonl", 5, "b" * 32, etag="b" * 32)
    now = {**MD5, "beta": "9" * 32}
    p = plan(d, observed(manifest, {**objects, stray.key: stray}, source_entries(now)))
    action = _compile(p)
    assert action.reason.startswith("beta changed: md5 c3d40000… → 99999999…: ")
    assert action.precondition.target_etag == "m1"
    deletes = {a.target.key: a for a in p.actions if a.kind is ActionKind.DELETE}
    # The previous build's shard and a leftover: both after the compile, If-Match, guarded by the manifest.
    assert set(deletes) == {"final_dataset/train/shard-00000-aaaa.jsonl", stray.key}
    for delete in deletes.values():
        assert (action.id, delete.id) in p.edges
        assert delete.precondition.target_etag and delete.source == d.final.manifest  # type: ignore[union-attr]
    # The delete guards accept them (the prefix is the final dataset's own), and so does a saved plan.
    assert check(d, observed(manifest, objects), p, GuardLimits()).errors == ()
    saved = serialize.loads(serialize.dumps(p))
    assert saved_checks.problems(d, saved) == []


def test_recipe_changes_are_named(tmp_path: Path) -> None:
    d = desired(tmp_path)
    manifest, objects = published(d)
    changed = desired(tmp_path, (tmp_path / "specs" / "final.yaml").read_text()
                      .replace("train: 0.9, validation: 0.05", "train: 0.8, validation: 0.15")
                      .replace("dedupe: true", "dedupe: false"))
    reason = _compile(plan(changed, observed(manifest, objects))).reason
    assert reason.startswith("splits changed; dedupe changed: ")


def test_added_and_removed_sources_and_damaged_shards(tmp_path: Path) -> None:
    d = desired(tmp_path)
    manifest, objects = published(d, {"alpha": MD5["alpha"], "gamma": "7" * 32})
    del objects["final_dataset/train/shard-00000-aaaa.jsonl"]
    reason = _compile(plan(d, observed(manifest, objects))).reason
    assert "beta added" in reason and "gamma removed" in reason
    assert "1 object(s) the manifest names are missing or differ (final_dataset/train/shard-00000-aaaa.jsonl)" in reason


def test_a_missing_source_is_a_finding_not_a_compile(tmp_path: Path) -> None:
    d = desired(tmp_path)
    p = plan(d, observed(None, {}, {"alpha": None, **{k: v for k, v in source_entries().items() if k == "beta"}}))
    assert p.actions == ()
    assert [f.key for f in p.findings if f.mapping == "final_dataset"] == ["lake:datasets/processed/c/alpha.jsonl"]


def test_current_with_leftovers_deletes_them_and_restores_the_local_copy(tmp_path: Path) -> None:
    d = desired(tmp_path)
    manifest, objects = published(d)
    stray = Entry("final_dataset/validation/shard-00000-cccccccccccc.jsonl", 5, "c" * 32, etag="c" * 32)
    p = plan(d, observed(manifest, {**objects, stray.key: stray}, local=None))
    kinds = sorted((a.kind.value, a.target.key) for a in p.actions)
    assert kinds == [("delete", stray.key), ("download", "kept/manifest.json")]
    assert saved_checks.problems(d, p) == []


def test_a_saved_plan_may_not_delete_outside_the_final_prefix_or_unguarded(tmp_path: Path) -> None:
    d = desired(tmp_path)
    manifest, objects = published(d)
    p = plan(d, observed(manifest, objects, source_entries({**MD5, "alpha": "1" * 32})))
    delete = next(a for a in p.actions if a.kind is ActionKind.DELETE)
    outside = dataclasses.replace(delete, target=dataclasses.replace(delete.target, key="datasets/processed/c/x"))
    unguarded = dataclasses.replace(delete, source=None)
    unpinned = dataclasses.replace(_compile(p), precondition=dataclasses.replace(
        _compile(p).precondition, source_md5=None))
    for bad in (outside, unguarded, unpinned):
        found = saved_checks.problems(d, dataclasses.replace(p, actions=(bad,), edges=()))
        assert found and found[0].startswith(f"{bad.kind.value} lake:"), found


def test_the_compile_reads_first_with_its_deletes_beneath_it(tmp_path: Path) -> None:
    from reconciler.plan.render import render_text

    d = desired(tmp_path)
    manifest, objects = published(d)
    early = Entry("final_dataset/test/shard-00000-dddddddddddd.jsonl", 5, "d" * 32, etag="d" * 32)
    p = plan(d, observed(manifest, {**objects, early.key: early}, source_entries({**MD5, "alpha": "1" * 32})))
    lines = render_text(p, d).splitlines()
    start = lines.index("  # final_dataset")
    assert lines[start + 1].startswith("  ~ final_dataset/manifest.json  (compile, 200 B: alpha changed: md5 a1b2")
    assert lines[start + 2].startswith(
        "  - final_dataset/test/shard-00000-dddddddddddd.jsonl  (delete: written by an earlier build that no manifest")
    assert lines[-1] == "Plan: 0 to upload, 0 to update, 1 to compile, 2 to delete. 2 findings above."


def test_a_saved_plan_may_repair_only_bytes_that_are_not_what_the_shard_name_says(tmp_path: Path) -> None:
    """Issue 23.8: the unguarded delete before the compile is accepted only for foreign bytes at a shard key."""
    d = desired(tmp_path)
    key = "final_dataset/train/shard-00001-" + "e" * 12 + ".jsonl"
    foreign = Entry(key, 10, "0" * 32, etag="0" * 32)
    manifest, objects = published(d)
    p = plan(d, observed(manifest, {**objects, key: foreign}, source_entries({**MD5, "alpha": "1" * 32})))
    [repair] = [a for a in p.actions if a.target.key == key]
    assert repair.source is None and (repair.id, _compile(p).id) in p.edges
    assert saved_checks.problems(d, serialize.loads(serialize.dumps(p))) == []
    # The same delete of bytes the name vouches for would skip the manifest's check: refused.
    own = dataclasses.replace(repair, md5="e" * 32)
    found = saved_checks.problems(d, dataclasses.replace(p, actions=(own,), edges=()))
    assert found and found[0].startswith(f"delete lake:{key}"), found
