"""The streaming planner: `plan.planner.plan` with the actions kept in the spill instead of a tuple.

The passes are the in-memory planner's, asked per key or per action:

1. the first pass is `plan.diff.plan_mapping` itself, a merge join over the two sides in key order
   (spilled sides iterate sorted); each action or finding is written to the spill as it is yielded,
   and each remote object an action destroys (`plan.moves.vacated`) is indexed by md5 beside it;
2. moves: each upload of known content asks that index for the first other key with the same md5
   (`plan.moves.move_from` builds the move); only the moves that wait for another move (the swaps
   and rotations `plan.moves.break_cycles` untangles) are held in memory, with networkx on them alone;
3. release-local: `plan.release.release_nodes` per local file, in key order, the writer of its S3 key
   looked up in the spill;
4. the later passes (datasets, the final dataset, the tier guards, record indexes, generated files) are
   `plan.planner.LATER_PASSES` themselves, run on `SpilledView`, the spill's answer to `plan.view.PlanView`:
   the actions at a key are an indexed lookup, the deletes a cursor, and "a generated file waits for every
   action on what it describes" a count and an INSERT ... SELECT of edges, so no pass holds the plan;
5. the delete guards (`plan.guards.guard_errors`) run on the actions they judge: the deletes, the writes
   to a deleted key, the moves, the releases and their verifies, with the findings and the counts.

`StreamedPlan.to_plan()` reads the result back as a `Plan`: for a plan that fits in memory it equals
`guards.check(desired, observed, plan(desired, observed), limits)` (tests/unit/scale/).
"""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
from collections.abc import Iterator, Set
from dataclasses import dataclass, field

from reconciler.actor_layout import with_discovered
from reconciler.model import (
    Action,
    ActionKind,
    Authority,
    Desired,
    Finding,
    FindingKind,
    MappingSpec,
    ObjectRef,
    Observed,
    Plan,
)
from reconciler.plan.diff import first_pass
from reconciler.plan.guards import GuardLimits, guard_errors, object_counts
from reconciler.plan.moves import Source, break_cycles, move_from, vacated
from reconciler.plan.planner import LATER_PASSES
from reconciler.plan.release import WRITERS, release_nodes, releases
from reconciler.plan.summary import ORDER, Tally, category
from reconciler.plan.view import Additions, Touching
from reconciler.scale.spill import Spill, dump, key_bytes, key_text, load

SCHEMA = (
    "CREATE TABLE actions (seq INTEGER PRIMARY KEY, id BLOB NOT NULL, mapping TEXT NOT NULL, kind TEXT NOT NULL, "
    "category TEXT NOT NULL, size INTEGER NOT NULL, md5 TEXT, tstore BLOB NOT NULL, tkey BLOB NOT NULL, "
    "sstore BLOB, skey BLOB, data BLOB NOT NULL)",
    "CREATE INDEX actions_id ON actions (id)",
    "CREATE INDEX actions_target ON actions (tstore, tkey)",
    # The first actions of each kind a summary shows: without it, a scan of every action per kind.
    "CREATE INDEX actions_category ON actions (category, seq)",
    # A finding's kind and key: what the datasets pass drops (an object the registry accounts for is not unmanaged).
    "CREATE TABLE findings (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, key BLOB NOT NULL, data BLOB NOT NULL)",
    "CREATE TABLE edges (before BLOB NOT NULL, after BLOB NOT NULL, PRIMARY KEY (before, after)) WITHOUT ROWID",
    # Remote objects an action of the plan destroys, by content: where a move may read from.
    "CREATE TABLE vacating (mapping TEXT NOT NULL, md5 TEXT NOT NULL, key BLOB NOT NULL, seq INTEGER NOT NULL, "
    "data BLOB NOT NULL)",
    "CREATE INDEX vacating_md5 ON vacating (mapping, md5, key, seq)",
    # Uploads turned into moves: the move, where it reads and who destroys that source.
    "CREATE TABLE renamed (old BLOB PRIMARY KEY, new BLOB NOT NULL, seq INTEGER NOT NULL, mapping TEXT NOT NULL, "
    "source_key BLOB NOT NULL, target_key BLOB NOT NULL, destroyer BLOB NOT NULL, waits_for BLOB, "
    "data BLOB NOT NULL)",
    "CREATE INDEX renamed_new ON renamed (new)",
    "CREATE TABLE parks (id BLOB PRIMARY KEY, data BLOB NOT NULL)",
)

@dataclass
class StreamedPlan:
    """A plan whose actions, edges and findings stay in the spill; the rest is small and held here."""

    spill: Spill
    spec_digest: str
    errors: tuple[str, ...]
    object_counts: dict[str, int]
    targets: tuple[str, ...]
    actions_count: int = 0
    findings_count: int = 0
    tallies: dict[str, Tally] = field(default_factory=dict)
    # The limits a saved plan file records (read_into); what `pixel apply` may only tighten.
    limits: GuardLimits = field(default_factory=GuardLimits)

    @property
    def applyable(self) -> bool:
        return not self.errors

    def actions(self) -> Iterator[Action]:
        for (data,) in self.spill.db.execute("SELECT data FROM actions ORDER BY seq"):
            yield load(data)

    def edges(self) -> Iterator[tuple[str, str]]:
        for before, after in self.spill.db.execute("SELECT before, after FROM edges ORDER BY before, after"):
            yield key_text(before), key_text(after)

    def findings(self) -> Iterator[Finding]:
        for (data,) in self.spill.db.execute("SELECT data FROM findings ORDER BY seq"):
            yield load(data)

    def finding_kinds(self) -> dict[str, int]:
        """The findings counted per kind, in SQL: all --strict reads, without loading one finding."""
        return dict(self.spill.db.execute("SELECT kind, count(*) FROM findings GROUP BY kind"))

    def first_actions(self, per_category: int) -> dict[str, list[Action]]:
        """Up to `per_category` actions of each summary category, in plan order: what a summary shows."""
        out: dict[str, list[Action]] = {}
        for name in self.tallies:
            rows = self.spill.db.execute(
                "SELECT data FROM actions WHERE category = ? ORDER BY seq LIMIT ?", (name, per_category)
            )
            out[name] = [load(data) for (data,) in rows]
        return out

    def to_plan(self) -> Plan:
        """The whole plan in memory: for tests."""
        return Plan(
            actions=tuple(self.actions()),
            edges=tuple(self.edges()),
            findings=tuple(self.findings()),
            spec_digest=self.spec_digest,
            errors=self.errors,
            object_counts=self.object_counts,
            targets=self.targets,
        )


class Writer:
    """Appends actions and findings to the spill in plan order."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.seq = 0
        self.findings = 0

    def action(self, action: Action) -> int:
        self.seq += 1
        source = action.source
        self.db.execute(
            "INSERT INTO actions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.seq,
                key_bytes(action.id),
                action.mapping,
                action.kind.value,
                category(action),
                action.size,
                action.md5,
                key_bytes(action.target.store),
                key_bytes(action.target.key),
                None if source is None else key_bytes(source.store),
                None if source is None else key_bytes(source.key),
                dump(action),
            ),
        )
        return self.seq

    def replace(self, seq: int, action: Action) -> None:
        source = action.source
        self.db.execute(
            "UPDATE actions SET id = ?, kind = ?, category = ?, sstore = ?, skey = ?, data = ? WHERE seq = ?",
            (
                key_bytes(action.id),
                action.kind.value,
                category(action),
                None if source is None else key_bytes(source.store),
                None if source is None else key_bytes(source.key),
                dump(action),
                seq,
            ),
        )

    def finding(self, finding: Finding) -> None:
        self.findings += 1
        self.db.execute(
            "INSERT INTO findings VALUES (?, ?, ?, ?)",
            (self.findings, finding.kind.value, key_bytes(finding.key), dump(finding)),
        )

    def edge(self, before: str, after: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO edges VALUES (?, ?)", (key_bytes(before), key_bytes(after)))


def stream_plan(
    desired: Desired,
    observed: Observed,
    spill: Spill,
    limits: GuardLimits | None = None,
    *,
    guard_desired: Desired | None = None,
) -> StreamedPlan:
    """`guards.check(guard_desired, observed, plan(desired, observed), limits)`, its actions in `spill`.

    `guard_desired`: the full specs the delete guards judge against (`--target` narrows `desired` only).
    """
    desired = with_discovered(desired, observed.discovered)
    db = spill.db
    for statement in SCHEMA:
        db.execute(statement)
    out = Writer(db)
    errors = _first_pass(desired, observed, out)
    _moves(desired, observed, out)
    _releases(desired, observed, out)
    spill.commit()
    counts = object_counts(desired, observed)
    view = SpilledView(out)
    for later in LATER_PASSES:
        later(desired, observed, view)
        view.finish()
    result = StreamedPlan(spill, desired.spec_digest, (*errors, *view.refused), counts, desired.targets)
    result.errors = (*result.errors, *_guard_errors(guard_desired or desired, result, limits or GuardLimits()))
    result.actions_count = out.seq
    (result.findings_count,) = db.execute("SELECT count(*) FROM findings").fetchone()
    result.tallies = tallies(db)
    spill.commit()
    return result


def _first_pass(desired: Desired, observed: Observed, out: Writer) -> list[str]:
    """`plan.diff.plan_mappings`, spilled: each mapping's merge join, and the sources a move could read."""
    errors: list[str] = []
    specs = {spec.name: spec for spec in desired.mappings}
    for name, item in first_pass(desired, observed, errors):
        if isinstance(item, Finding):
            out.finding(item)
            continue
        seq = out.action(item)
        spec = specs[name]
        if spec.authority is not Authority.LOCAL:
            continue  # only a push moves an object instead of uploading it again
        if (source := vacated(spec, observed.mappings[name].remote, item)) is not None:
            out.db.execute(
                "INSERT INTO vacating VALUES (?, ?, ?, ?, ?)",
                (name, source.md5, key_bytes(source.key), seq, dump(source)),
            )
    return errors


def _moves(desired: Desired, observed: Observed, out: Writer) -> None:
    """`plan.moves.plan_moves`, with the md5 -> source lookups in the spill."""
    db = out.db
    for spec in desired.mappings:
        if spec.name not in observed.mappings or spec.authority is not Authority.LOCAL:
            continue
        if db.execute("SELECT 1 FROM vacating WHERE mapping = ? LIMIT 1", (spec.name,)).fetchone() is None:
            continue
        _match_uploads(spec, db)
        _break_move_cycles(spec, db)
    # The moves take their uploads' places; parked copies follow every action of the first pass, by id.
    renamed = db.execute("SELECT seq, data FROM renamed ORDER BY seq")
    for seq, data in renamed:
        out.replace(seq, load(data))
    for (data,) in db.execute("SELECT data FROM parks ORDER BY id"):
        out.action(load(data))
    _moved_reasons(db, out)
    for new, waits_for in db.execute("SELECT new, waits_for FROM renamed WHERE waits_for IS NOT NULL"):
        out.edge(key_text(new), key_text(waits_for))


def _match_uploads(spec: MappingSpec, db: sqlite3.Connection) -> None:
    uploads = db.execute(
        "SELECT seq, data FROM actions WHERE mapping = ? AND kind = ? AND md5 IS NOT NULL ORDER BY seq",
        (spec.name, ActionKind.UPLOAD.value),
    )
    for seq, data in uploads:
        upload: Action = load(data)
        assert upload.md5 is not None
        # First match only, as in memory: the lowest other key with this content.
        row = db.execute(
            "SELECT data FROM vacating WHERE mapping = ? AND md5 = ? AND key != ? ORDER BY key, seq LIMIT 1",
            (spec.name, upload.md5, key_bytes(upload.target.key)),
        ).fetchone()
        if row is None:
            continue
        source: Source = load(row[0])
        move = move_from(upload, source)
        db.execute(
            "INSERT INTO renamed VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
            (
                key_bytes(upload.id),
                key_bytes(move.id),
                seq,
                spec.name,
                key_bytes(source.key),
                key_bytes(upload.target.key),
                key_bytes(source.destroyer),
                dump(move),
            ),
        )
    # A destroyer that was itself an upload turned into a move is now known by its move id.
    db.execute(
        "UPDATE renamed SET waits_for = coalesce((SELECT r.new FROM renamed AS r WHERE r.old = renamed.destroyer), "
        "destroyer) WHERE mapping = ?",
        (spec.name,),
    )


def _break_move_cycles(spec: MappingSpec, db: sqlite3.Connection) -> None:
    """`plan.moves.break_cycles` on the moves that wait for another move: only they can form a cycle (every
    move waits for one action, so a cycle is moves alone), and only they are read into memory."""
    rows = db.execute(
        "SELECT new, source_key, waits_for, data FROM renamed WHERE mapping = ? "
        "AND waits_for IN (SELECT new FROM renamed WHERE mapping = ?)",
        (spec.name, spec.name),
    )
    actions: dict[str, Action] = {}
    reads: dict[str, str] = {}
    destroyer: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    for new, source_key, waits_for, data in rows:
        node, key, before = key_text(new), key_text(source_key), key_text(waits_for)
        actions[node] = load(data)
        reads[node] = key
        destroyer[key] = before
        edges.add((node, before))
    if not edges:
        return
    moves = set(actions)
    break_cycles(actions, edges, reads, destroyer)
    for node in moves - reads.keys():
        # Rerouted through a parked copy: it reads the parked key and waits for the park, whose edges follow.
        db.execute(
            "UPDATE renamed SET data = ?, waits_for = NULL WHERE new = ?", (dump(actions[node]), key_bytes(node))
        )
    for node, action in actions.items():
        if node not in moves:
            db.execute("INSERT INTO parks VALUES (?, ?)", (key_bytes(node), dump(action)))
    for before, after in edges:
        if before not in moves:
            db.execute("INSERT OR IGNORE INTO edges VALUES (?, ?)", (key_bytes(before), key_bytes(after)))


def _moved_reasons(db: sqlite3.Connection, out: Writer) -> None:
    """A delete whose content moves away says where to: "moved to" every target reading it, sorted."""
    rows = db.execute(
        "SELECT destroyer, target_key FROM renamed WHERE destroyer >= ? AND destroyer < ? ORDER BY destroyer, "
        "target_key",
        (key_bytes(f"{ActionKind.DELETE.value}:"), key_bytes(f"{ActionKind.DELETE.value};")),
    )
    current: bytes | None = None
    targets: list[str] = []
    for destroyer, target in itertools.chain(rows, [(None, b"")]):
        if destroyer != current and current is not None:
            (seq, data) = db.execute("SELECT seq, data FROM actions WHERE id = ?", (current,)).fetchone()
            delete: Action = load(data)
            out.replace(seq, dataclasses.replace(delete, reason=f"moved to {', '.join(targets)}"))
            targets = []
        current = destroyer
        targets.append(key_text(target))


def _releases(desired: Desired, observed: Observed, out: Writer) -> None:
    """`plan.release.plan_release`: per local file in key order, the writer of its S3 copy looked up."""
    db = out.db
    kinds = tuple(kind.value for kind in WRITERS)
    marks = ", ".join("?" for _ in kinds)
    query = f"SELECT id FROM actions WHERE tstore = ? AND tkey = ? AND kind IN ({marks}) ORDER BY seq DESC LIMIT 1"

    def writer_of(ref: ObjectRef) -> str | None:
        row = db.execute(query, (key_bytes(ref.store), key_bytes(ref.key), *kinds)).fetchone()
        return None if row is None else key_text(row[0])

    for spec in desired.mappings:
        obs = observed.mappings.get(spec.name)
        if obs is None or not releases(spec):
            continue
        for rel in obs.local:  # in key order, as `sorted(obs.local)` is in memory
            found = release_nodes(spec, obs, rel, writer_of)
            if found is None:
                continue
            verify, release, writer = found
            out.action(verify)
            out.action(release)
            if writer is not None:
                out.edge(writer, verify.id)
            out.edge(verify.id, release.id)


class SpilledView(Additions):
    """`plan.view.PlanView` over the spill: each question an indexed query or a cursor, never the whole plan.

    What a pass adds is held until `finish` (a pass's own output: a dataset's copy, a shard's delete, a
    generated file's write), so every question is about the plan as the pass found it, as in memory. The
    edges to a generated file go from SQL to SQL: the actions it describes are never read into Python.
    """

    def __init__(self, out: Writer) -> None:
        super().__init__()
        self.out = out
        self.db = out.db
        self.refused: list[str] = []  # the errors of every pass so far
        self._touched: Touching | None = None
        # Made when a pass first needs them: a plan without actors or a registry never pays for them.
        self._indexed: set[str] = set()

    def _index(self, name: str, columns: str) -> None:
        if name not in self._indexed:
            self.db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {columns}")
            self._indexed.add(name)

    def at(self, ref: ObjectRef) -> list[Action]:
        rows = self.db.execute(
            "SELECT data FROM actions WHERE tstore = ? AND tkey = ? ORDER BY seq",
            (key_bytes(ref.store), key_bytes(ref.key)),
        )
        return [load(data) for (data,) in rows]

    def of_kind(self, kind: ActionKind) -> Iterator[Action]:
        for (data,) in self.db.execute("SELECT data FROM actions WHERE kind = ? ORDER BY seq", (kind.value,)):
            yield load(data)

    def _touch(self, touching: Touching) -> None:
        """The seqs of the actions matching `touching` into the `touched` table (kept for the next question)."""
        if self._touched == touching:
            return
        db = self.db
        db.execute("CREATE TABLE IF NOT EXISTS touched (seq INTEGER PRIMARY KEY)")
        db.execute("DELETE FROM touched")
        insert = "INSERT OR IGNORE INTO touched SELECT seq FROM actions WHERE "
        if touching.scope is not None:
            self._index("actions_mapping", "actions (mapping, kind)")
            unless = "" if touching.scope_except is None else touching.scope_except.value
            db.execute(insert + "mapping = ? AND kind != ?", (touching.scope, unless))
        if touching.refs:
            self._index("actions_source", "actions (sstore, skey)")
        for ref in touching.refs:
            where = (key_bytes(ref.store), key_bytes(ref.key))
            db.execute(insert + "tstore = ? AND tkey = ?", where)
            db.execute(insert + "sstore = ? AND skey = ?", where)
        if touching.stores:
            stores = [key_bytes(store) for store in sorted(touching.stores)]
            marks = ", ".join("?" for _ in stores)
            db.execute(
                insert + f"kind != ? AND (tstore IN ({marks}) OR sstore IN ({marks}))",
                (ActionKind.WRITE_MANIFEST.value, *stores, *stores),
            )
        self._touched = touching

    def count(self, touching: Touching) -> int:
        self._touch(touching)
        (n,) = self.db.execute("SELECT count(*) FROM touched").fetchone()
        return int(n)

    def wait_for(self, touching: Touching, after: str) -> None:
        self._touch(touching)
        self.db.execute(
            "INSERT OR IGNORE INTO edges SELECT a.id, ? FROM touched AS t JOIN actions AS a ON a.seq = t.seq",
            (key_bytes(after),),
        )

    def drop_findings(self, kind: FindingKind, keys: Set[str]) -> None:
        self._index("findings_key", "findings (key, kind)")
        self.db.executemany(
            "DELETE FROM findings WHERE key = ? AND kind = ?", ((key_bytes(key), kind.value) for key in keys)
        )

    def finish(self) -> None:
        """Write what the pass added: the next pass sees it."""
        for action in self.actions:
            self.out.action(action)
        for finding in self.findings:
            self.out.finding(finding)
        for before, after in self.edges:
            self.out.edge(before, after)
        self.refused += self.errors
        self.clear()
        self._touched = None


def judged(db: sqlite3.Connection) -> Iterator[bytes]:
    """The spilled actions `guards.guard_errors` reads, in plan order: every delete, what makes one exempt or not
    counted (a write to its key from a source, a move), the releases and the verifies before them."""
    rows = db.execute(
        "SELECT data FROM actions WHERE kind IN (:delete, :release, :verify) "
        "OR (sstore IS NOT NULL AND EXISTS (SELECT 1 FROM actions AS d "
        "WHERE d.kind = :delete AND d.tstore = actions.tstore AND d.tkey = actions.tkey)) "
        "OR (kind = :move AND EXISTS (SELECT 1 FROM actions AS d "
        "WHERE d.kind = :delete AND d.tstore = actions.sstore AND d.tkey = actions.skey)) "
        "ORDER BY seq",
        {
            "delete": ActionKind.DELETE.value,
            "move": ActionKind.MOVE.value,
            "release": ActionKind.RELEASE_LOCAL.value,
            "verify": ActionKind.VERIFY.value,
        },
    )
    for (data,) in rows:
        yield data


def _guard_errors(desired: Desired, result: StreamedPlan, limits: GuardLimits) -> list[str]:
    """`guards.guard_errors` on the part of the plan it reads: every delete, what makes one exempt or not
    counted (a write to its key from a source, a move), the releases and the verifies before them."""
    db = result.spill.db
    actions = tuple(map(load, judged(db)))
    ids = {a.id for a in actions}
    edges = tuple(edge for edge in result.edges() if edge[0] in ids and edge[1] in ids)
    part = Plan(
        actions=actions,
        edges=edges,
        spec_digest=result.spec_digest,
        errors=result.errors,
        object_counts=result.object_counts,
        targets=result.targets,
    )
    return guard_errors(desired, part, limits, finding_kinds=result.finding_kinds())


def tallies(db: sqlite3.Connection) -> dict[str, Tally]:
    """`plan.summary.tally`: every category of ORDER, then any other in the order it first appears."""
    rows = db.execute("SELECT category, count(*), sum(size), min(seq) FROM actions GROUP BY category")
    found = {name: (count, size, first) for name, count, size, first in rows}
    out = {name: Tally(*found[name][:2]) if name in found else Tally() for name in ORDER}
    for name in sorted((n for n in found if n not in out), key=lambda n: found[n][2]):
        out[name] = Tally(*found[name][:2])
    return out
