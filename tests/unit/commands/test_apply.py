"""`apply`: plan under the lock, confirm, execute; or exactly a saved plan, refused when stale or loosened."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.apply.session import LockOptions
from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_ERROR, EXIT_OK
from reconciler.commands.apply import apply
from reconciler.commands.apply_saved import StalePlan
from reconciler.commands.plan import plan
from reconciler.errors import UserError
from reconciler.plan.guards import GuardLimits
from tests.unit.commands.conftest import World, md5

NOW = LockOptions(timeout=0)


def test_apply_uploads_prunes_and_then_there_is_nothing_to_do(world: World) -> None:
    world.local("a.json", b'{"a": 1}')
    world.local("sub/b.json", b"[]")
    world.local("skipped.txt", b"not included")
    world.lake.put("datasets/raw/old.json", b"gone")
    world.lake.put("outside/kept.json", b"not the mapping's")
    assert apply(world.specs, auto_approve=True, parallelism=2, lock=NOW) == EXIT_OK
    out, _ = world.output()
    assert "Apply complete! 3 done, 0 failed" in out
    assert world.lake.keys() == ["datasets/raw/a.json", "datasets/raw/sub/b.json", "outside/kept.json"]
    assert md5(world.lake.get("datasets/raw/a.json")) == md5(b'{"a": 1}')
    # The lock was released, and the replan is empty.
    assert apply(world.specs, auto_approve=True, parallelism=2, lock=NOW) == EXIT_OK
    assert "No changes" in world.output()[0]


def test_without_a_terminal_or_auto_approve_nothing_is_touched(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.local("a.json", b"{}")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert apply(world.specs, auto_approve=False, parallelism=2, lock=NOW) == EXIT_ERROR
    _, err = world.output()
    assert "re-run with --auto-approve" in err
    assert world.lake.keys() == []


def test_a_plan_with_guard_errors_is_refused_before_any_action(world: World) -> None:
    for n in range(3):
        world.lake.put(f"datasets/raw/{n}.json", b"x")
    world.local("keep.json", b"{}")
    limits = GuardLimits(max_delete=2)
    assert apply(world.specs, auto_approve=True, parallelism=2, lock=NOW, limits=limits) == EXIT_ERROR
    assert world.lake.keys() == ["datasets/raw/0.json", "datasets/raw/1.json", "datasets/raw/2.json"]


def saved(world: World, path: Path, limits: GuardLimits | None = None) -> Path:
    assert plan(world.specs, detailed_exitcode=False, parallelism=2, out=path, limits=limits) == EXIT_OK
    world.output()
    return path


def test_a_saved_plan_is_applied_exactly(world: World, tmp_path: Path) -> None:
    world.local("a.json", b"{}")
    plan_file = saved(world, tmp_path / "p.json")
    world.local("later.json", b"{}")  # not in the plan: not applied
    assert apply(world.specs, auto_approve=False, parallelism=2, lock=NOW, plan_file=plan_file) == EXIT_OK
    assert world.lake.keys() == ["datasets/raw/a.json"]


def test_a_saved_plan_is_stale_once_the_specs_change(world: World, tmp_path: Path) -> None:
    world.local("a.json", b"{}")
    plan_file = saved(world, tmp_path / "p.json")
    spec = world.specs / "specs.yaml"
    spec.write_text(spec.read_text().replace("prune: true", "prune: false"))
    with pytest.raises(StalePlan, match="plan is stale"):
        apply(world.specs, auto_approve=True, parallelism=2, lock=NOW, plan_file=plan_file)
    assert world.lake.keys() == []


def test_a_guard_flag_may_tighten_a_saved_plan_never_loosen_it(world: World, tmp_path: Path) -> None:
    world.lake.put("datasets/raw/old.json", b"x")
    world.local("a.json", b"{}")
    plan_file = saved(world, tmp_path / "p.json", GuardLimits(max_delete=5))
    with pytest.raises(UserError, match="would loosen the saved plan's --max-delete 5"):
        apply(world.specs, auto_approve=True, parallelism=2, lock=NOW, plan_file=plan_file,
              limits=GuardLimits(max_delete=9), given={"max_delete"})
    # Tightened below the plan's one delete: refused, nothing touched.
    with pytest.raises(UserError):
        apply(world.specs, auto_approve=True, parallelism=2, lock=NOW, plan_file=plan_file,
              limits=GuardLimits(max_delete=0), given={"max_delete"})
    assert world.lake.keys() == ["datasets/raw/old.json"]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ({"targets": ("raw",)}, "--target"),
        ({"observe_mode": "inventory"}, "--observe"),
        ({"rehash_all": True}, "--rehash-all"),
        ({"compact": True}, "--compact"),
        ({"output_format": "markdown"}, "--format markdown"),
    ],
)
def test_a_flag_with_nothing_to_act_on_in_a_saved_plan_is_refused(
    world: World, tmp_path: Path, flags: dict[str, object], named: str
) -> None:
    world.local("a.json", b"{}")
    plan_file = saved(world, tmp_path / "p.json")
    with pytest.raises(UserError, match=named):
        apply(world.specs, auto_approve=True, parallelism=2, lock=NOW, plan_file=plan_file, **flags)  # type: ignore[arg-type]
    assert world.lake.keys() == []


def test_json_reports_a_refusal_on_stdout(world: World, tmp_path: Path) -> None:
    with pytest.raises(UserError):
        apply(world.specs, auto_approve=True, parallelism=2, lock=NOW, plan_file=tmp_path / "p.json",
              targets=("raw",), output_format=OutputFormat.JSON)
    report = world.json()
    assert report["status"] == "error" and "--target" in report["errors"][0]
