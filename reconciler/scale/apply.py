"""A saved plan applied from its spill: every check `pixel apply FILE` makes, then the DAG run level by level.

The file is read into a spill (`reader.read_into`: schema, ids, edges, guard digest, summary), so a plan of
ten million actions is never whole in memory. Then, as `pixel apply FILE` does:

1. `check`: each action against the current specs (`saved_checks`: where it lies, its preconditions, its
   keys), read from the spill one at a time; then the delete guards on the part of the plan they read (the
   streaming planner's own query: deletes, what makes a delete exempt, moves, releases and verifies), the
   tier rules among them. The rules of the datasets, the final dataset, the record indexes and the generated
   files each read one action, so no specs make the check read the plan whole.
2. `compute_levels`: each action's level, the longest chain of edges ending in it (`apply.batching.levels`),
   computed in SQLite a level at a time (Kahn's algorithm with the frontier in a table). Every edge goes
   from a lower level to a higher one, so the actions of one level never wait for each other.
3. `run_levels`: each level in batches of `batch` actions, in key order, each batch a plan without edges run
   by the in-memory executor. An action one of whose predecessors failed or was skipped is skipped, naming
   the failure as the in-memory executor does. Once the executor reports an interrupt, or the lock is lost,
   no new batch starts.

What stays in memory is one batch, the failures and what they kept from running, and the counts.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from reconciler.apply.executor import (
    DONE,
    FAILED,
    NOT_STARTED,
    SKIPPED,
    STOPPED,
    Outcome,
    PlanExecutor,
    Reporter,
)
from reconciler.apply.runner import ByteTotals
from reconciler.errors import UserError
from reconciler.keys import printable
from reconciler.model import Action, Desired, Plan
from reconciler.plan import saved_checks
from reconciler.plan.guards import GuardLimits
from reconciler.scale.planner import StreamedPlan, judged
from reconciler.scale.spill import load
from reconciler.stores.base import Store
from reconciler.targets import narrow

DEFAULT_BATCH = 2048
_REFUSED_SHOWN = 10

_LEVEL_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS levels (level INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (level, seq)) "
    "WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS waiting (seq INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS step (seq INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
    # Edges by the action that waits: the count of what each action waits for, and its blocked predecessors.
    "CREATE INDEX IF NOT EXISTS edges_after ON edges (after, before)",
    # Actions that failed or were skipped, by id, with the failure their descendants name (blocked_by).
    "CREATE TABLE IF NOT EXISTS blocked (id BLOB PRIMARY KEY, cause TEXT NOT NULL) WITHOUT ROWID",
)


# --- 1. the checks ----------------------------------------------------------------------------------------


def problems(desired: Desired, streamed: StreamedPlan, limits: GuardLimits) -> list[str]:
    """`saved_checks.problems(desired, streamed.to_plan(), limits)`, reading the plan from the spill.

    Every rule but the guards reads one action (the datasets', the final dataset's, the generated files' and
    the record indexes' among them); the guards, the tier rules included, read the part `judged` selects."""
    managed = saved_checks._Managed.of(desired)
    scoped = saved_checks._Managed.of(narrow(desired, streamed.targets)) if streamed.targets else None
    lines: list[str] = []
    refused: set[str] = set()  # ids of refused actions: the guards judge the rest, as saved_checks does
    for action in streamed.actions():
        checks = (
            saved_checks.key_problem(action),
            saved_checks.precondition_problem(desired, action),
            saved_checks._where_problem(managed, action),
        )
        found = [p for p in checks if p]
        if not found and scoped is not None and saved_checks._where_problem(scoped, action) is not None:
            found.append(f"lies outside the plan's targets ({', '.join(streamed.targets)})")
        if found:
            lines.append(f"{saved_checks.label(action)} {'; '.join(found)}")
            refused.add(action.id)
    actions = tuple(a for a in map(load, judged(streamed.spill.db)) if a.id not in refused)
    ids = {a.id for a in actions}
    part = Plan(
        actions=actions,
        edges=tuple(edge for edge in streamed.edges() if edge[0] in ids and edge[1] in ids),
        spec_digest=streamed.spec_digest,
        object_counts=streamed.object_counts,
        targets=streamed.targets,
    )
    return lines + saved_checks._guard_errors(desired, part, limits, finding_kinds=streamed.finding_kinds())


def check(desired: Desired, streamed: StreamedPlan, limits: GuardLimits, *, plan_file: str) -> None:
    """`saved_checks.check` on a streamed plan: UnsafeSavedPlan naming every offending action, or return."""
    found = problems(desired, streamed, limits)
    if found:
        raise saved_checks.UnsafeSavedPlan(
            f"saved plan {plan_file} is not applyable against the current specs; nothing was touched:\n  "
            f"{saved_checks._shown(printable(line) for line in found)}\n"
            f"Run `pixel plan -out {plan_file}` again, review it, then apply it"
        )


# --- 2. levels --------------------------------------------------------------------------------------------


def compute_levels(streamed: StreamedPlan) -> int:
    """Each action's level into the spill's `levels` table; the number of levels. UserError on a cycle."""
    db = streamed.spill.db
    for statement in _LEVEL_SCHEMA:
        db.execute(statement)
    for table in ("levels", "waiting", "step", "blocked"):
        db.execute(f"DELETE FROM {table}")
    db.execute(
        "INSERT INTO waiting SELECT a.seq, count(*) FROM edges AS e JOIN actions AS a ON a.id = e.after "
        "GROUP BY a.seq"
    )
    db.execute("INSERT INTO levels SELECT 0, seq FROM actions WHERE seq NOT IN (SELECT seq FROM waiting)")
    level = 0
    while True:
        db.execute("DELETE FROM step")
        # What each action waiting on this level's actions stops waiting for once they have run.
        db.execute(
            "INSERT INTO step SELECT b.seq, count(*) FROM levels AS l JOIN actions AS a ON a.seq = l.seq "
            "JOIN edges AS e ON e.before = a.id JOIN actions AS b ON b.id = e.after WHERE l.level = ? "
            "GROUP BY b.seq",
            (level,),
        )
        db.execute(
            "UPDATE waiting SET n = n - (SELECT s.n FROM step AS s WHERE s.seq = waiting.seq) "
            "WHERE seq IN (SELECT seq FROM step)"
        )
        added = db.execute(
            "INSERT INTO levels SELECT ?, w.seq FROM step AS s JOIN waiting AS w ON w.seq = s.seq WHERE w.n = 0",
            (level + 1,),
        ).rowcount
        if added <= 0:
            break
        db.execute("DELETE FROM waiting WHERE seq IN (SELECT seq FROM step) AND n = 0")
        level += 1
    (left,) = db.execute("SELECT count(*) FROM waiting").fetchone()
    if left:
        raise UserError(f"the plan cannot be applied: its action graph has a cycle ({left:,} actions in or after it)")
    return level + 1


def levels_of(streamed: StreamedPlan) -> dict[str, int]:
    """Action id -> level, for tests: what `apply.batching.levels` gives for the same plan."""
    compute_levels(streamed)
    rows = streamed.spill.db.execute("SELECT a.id, l.level FROM levels AS l JOIN actions AS a ON a.seq = l.seq")
    return {bytes(key).decode("utf-8", "surrogatepass"): level for key, level in rows}


# --- 3. running -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class StreamedResult:
    """What an apply did, counted: done actions are counted, not kept (there may be ten million)."""

    done: int = 0
    failed: list[Outcome] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)  # kept from running by a failure, or stopped in flight
    not_started: int = 0  # kept from starting by an interrupt or a lost lock
    interrupted: bool = False
    bytes: ByteTotals = field(default_factory=ByteTotals)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.not_started and not self.interrupted


def run_levels(
    streamed: StreamedPlan,
    desired: Desired,
    stores: Mapping[str, Store],
    executor: PlanExecutor,
    *,
    reporter: Reporter,
    stop: threading.Event,
    batch: int = DEFAULT_BATCH,
    levels: int | None = None,
) -> StreamedResult:
    """Run every action after all it waits for, a batch of one level at a time (see the module's docstring).

    `levels`: what `compute_levels` returned, when the caller computed them first (before taking the lock).
    """
    db = streamed.spill.db
    count = compute_levels(streamed) if levels is None else levels
    result = StreamedResult()
    seen = 0
    checked = False
    for level in range(count):
        for actions in _batches(db, level, batch):
            if stop.is_set() or result.interrupted:
                result.not_started += streamed.actions_count - seen
                return result
            seen += len(actions)
            runnable = []
            for action in actions:
                cause = _blocked_by(db, action.id) if result.failed or result.skipped else None
                if cause is None:
                    runnable.append(action)
                else:
                    skipped = Outcome(action, SKIPPED, blocked_by=cause)
                    reporter.finished(skipped)
                    _settle(db, result, skipped)
            if not runnable:
                continue
            plan = Plan(actions=tuple(runnable), edges=(), spec_digest=streamed.spec_digest, targets=streamed.targets)
            if not checked:
                # Once: a cluster's check asks every worker for its roots and credentials.
                executor.check(plan, desired)
                checked = True
            outcome, counts = executor.run(plan, desired, stores, reporter=reporter, stop=stop)
            result.bytes.add(counts)
            result.interrupted = result.interrupted or outcome.interrupted
            for each in outcome.outcomes:
                _settle(db, result, each)
    return result


def _batches(db: sqlite3.Connection, level: int, size: int) -> Iterator[list[Action]]:
    rows = db.execute(
        "SELECT a.data FROM levels AS l JOIN actions AS a ON a.seq = l.seq WHERE l.level = ? "
        "ORDER BY a.tstore, a.tkey, a.id",
        (level,),
    )
    while chunk := rows.fetchmany(size):
        yield [load(data) for (data,) in chunk]


def _blocked_by(db: sqlite3.Connection, action_id: str) -> str | None:
    row = db.execute(
        "SELECT b.cause FROM edges AS e JOIN blocked AS b ON b.id = e.before WHERE e.after = ? "
        "ORDER BY b.cause LIMIT 1",
        (action_id.encode("utf-8", "surrogatepass"),),
    ).fetchone()
    return None if row is None else str(row[0])


def _settle(db: sqlite3.Connection, result: StreamedResult, outcome: Outcome) -> None:
    if outcome.status == DONE:
        result.done += 1
        return
    if outcome.status == FAILED:
        result.failed.append(outcome)
        cause = outcome.action.id
    elif outcome.blocked_by == NOT_STARTED:
        result.not_started += 1
        cause = NOT_STARTED
    else:
        result.skipped.append(outcome)
        # What waited on a transfer the second Ctrl-C stopped was kept from starting by the interrupt.
        cause = NOT_STARTED if outcome.blocked_by == STOPPED else outcome.blocked_by
    db.execute(
        "INSERT OR REPLACE INTO blocked VALUES (?, ?)", (outcome.action.id.encode("utf-8", "surrogatepass"), cause)
    )
