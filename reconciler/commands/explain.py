"""`pixel explain KEY`: why the plan does what it does to one key.

KEY is an S3 key, a path under a local store, or either as STORE:KEY. The answer
names the mapping and the spec file that declared it, the rule that matched
(include/exclude, authority, prune, protect), both observed sides with their
hashes, and every action and finding of the plan that concerns the key.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import click

from reconciler.commands import EXIT_OK
from reconciler.commands.common import load
from reconciler.globs import matches
from reconciler.keys import printable
from reconciler.model import Action, Desired, Entry, Finding, LocalStoreSpec, MappingSpec, Observed, Plan
from reconciler.plan.render import action_line, finding_line
from reconciler.rules import MANIFEST_STATUS, STEPS, PairState, classify
from reconciler.workflow import observe_and_plan, open_stores


def _split(desired: Desired, key: str) -> tuple[str | None, str]:
    store, sep, rest = key.partition(":")
    if sep and store in desired.stores:
        return store, rest
    return _local_path(desired, key) or (None, key)


def _local_path(desired: Desired, key: str) -> tuple[str, str] | None:
    """A path on this machine (`demo-data/gdrive/raw/x.jsonl`, as a shell completes it) as the local store and
    key it is, when it lies under a local store's root. Only a path that exists, or is written as one (absolute,
    `./`, `../`, `~`), is read so: a bare `raw/x.jsonl` is still a key on either side."""
    written_as_path = key.startswith(("/", "./", "../", "~"))
    path = Path(key).expanduser()
    if not (written_as_path or path.exists()):
        return None
    candidates = {Path(os.path.abspath(path)), path.resolve()}
    for name, spec in desired.stores.items():
        if not isinstance(spec, LocalStoreSpec):
            continue
        roots = {Path(os.path.abspath(spec.root)), Path(spec.root).resolve()}
        for candidate, root in itertools.product(candidates, roots):
            if candidate != root and candidate.is_relative_to(root):
                return name, candidate.relative_to(root).as_posix()
    return None


def _entry(entry: Entry | None) -> str:
    if entry is None:
        return "absent"
    md5 = entry.md5 or "unknown (not an md5 ETag: a rehash learns it)"
    return f"{entry.size} bytes, md5 {md5}"


def _rel(spec: MappingSpec, store: str | None, key: str) -> str | None:
    """The key relative to the mapping, when `key` lies under either of its sides."""
    sides = ((spec.s3_store, spec.s3_prefix), (spec.local_store, spec.local_base))
    for side_store, base in sides:
        if (store is None or store == side_store) and key.startswith(base) and key != base:
            return key[len(base) :]
    return None


def _concerns(action: Action, store: str | None, key: str) -> bool:
    refs = [action.target] + ([action.source] if action.source else [])
    return any(ref.key == key and (store is None or ref.store == store) for ref in refs)


def explain_key(desired: Desired, observed: Observed, plan: Plan, key: str) -> list[str]:
    store, bare = _split(desired, key)
    lines = [f"{key}:"]
    if store is not None and not key.startswith(f"{store}:"):
        lines.append(f"  the local file {store}:{bare}")
    covered = False
    unsynced = False  # a side differs or is unknown: "nothing to do" would not mean "both sides agree"
    for spec in desired.mappings:
        rel = _rel(spec, store, bare)
        if rel is None:
            continue
        covered = True
        where = f" (declared in {spec.source_file})" if spec.source_file else ""
        sides = f"{spec.local_store}:{spec.local_path} ↔ {spec.s3_store}:{spec.s3_prefix}"
        lines.append(f"  mapping {spec.name!r}{where}: {sides}")
        lines.append(
            f"    authority {spec.authority.value}, prune {str(spec.prune).lower()}, "
            f"protect {str(spec.protect).lower()}, release_local {str(spec.release_local).lower()}, "
            f"prune_local {str(spec.prune_local).lower()}"
        )
        if not matches(rel, spec.include, spec.exclude):
            rule = f"include {list(spec.include)}, exclude {list(spec.exclude)}"
            lines.append(f"    not managed: {rel!r} does not pass the mapping's filters ({rule})")
            continue
        obs = observed.mappings.get(spec.name)
        local = obs.local.get(rel) if obs else None
        remote = obs.remote.get(rel) if obs else None
        lines.append(f"    local  {spec.local_store}:{spec.local_key(rel)}: {_entry(local)}")
        lines.append(f"    remote {spec.s3_store}:{spec.remote_key(rel)}: {_entry(remote)}")
        if local is not None or remote is not None:
            state = classify(local, remote)
            unsynced = unsynced or state is not PairState.SYNCED
            lines.append(
                f"    state {state.value} (manifest status {MANIFEST_STATUS[state].value}): "
                f"under authority {spec.authority.value} the rule is {STEPS[state, spec.authority].value}"
            )
    for tier in desired.tiers:
        if (store is None or store == tier.store) and bare.startswith(tier.prefix):
            covered = True
            lines.append(
                f"  tier {tier.name!r}: {tier.store}:{tier.prefix} (ownership {tier.ownership.value}, "
                f"protect {str(tier.protect).lower()})"
            )
    for dataset in desired.datasets:
        if bare in (dataset.key, dataset.source.key if dataset.source else None):
            covered = True
            role = "canonical path" if bare == dataset.key else f"source ({dataset.organise.value} into {dataset.key})"
            declared = f" in {dataset.source_file}" if dataset.source_file else ""
            lines.append(f"  dataset {dataset.name!r}{declared}: {role}")
    actions = [a for a in plan.actions if _concerns(a, store, bare)]
    findings: list[Finding] = [f for f in plan.findings if f.key in (key, bare) or f.key.endswith(":" + bare)]
    if actions:
        lines.append("  the plan:")
        lines.extend("  " + action_line(a) for a in actions)
        for action in actions:
            waits = [before for before, after in plan.edges if after == action.id]
            if waits:
                lines.append(f"    {action.id} waits for: {', '.join(waits)}")
    elif covered and (unsynced or findings):
        why = "see the findings" if findings else "the sides differ, and the rule above leaves it"
        lines.append(f"  the plan: nothing to do ({why})")
    elif covered:
        lines.append("  the plan: nothing to do (both sides agree with the specs)")
    if findings:
        lines.append("  findings:")
        lines.extend("  " + finding_line(f) for f in findings)
    if not covered and not actions and not findings:
        lines.append("  not covered by any mapping, tier or dataset in the specs: pixel leaves it alone")
    return lines


def explain(specs: Path, key: str, *, parallelism: int = 16) -> int:
    desired = load(specs)
    ws = open_stores(desired, parallelism=parallelism)
    observed, plan = observe_and_plan(ws)
    # Each line escaped as a whole: the key asked about, spec paths and observed keys may hold control characters.
    click.echo("\n".join(printable(line) for line in explain_key(ws.desired, observed, plan, key)))
    return EXIT_OK
