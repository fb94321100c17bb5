"""`pixel explain KEY`: why the plan does what it does to one key.

KEY is an S3 key, a path under a local store, or either as STORE:KEY. The answer
names the mapping and the spec file that declared it, the rule that matched
(include/exclude, authority, prune, protect), both observed sides with their
hashes, and every action and finding of the plan that concerns the key.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_OK
from reconciler.commands.common import load
from reconciler.keys import printable
from reconciler.manifests.exclusions import KEPT_IN_S3
from reconciler.model import Action, Desired, Entry, Finding, LocalStoreSpec, MappingSpec, Observed, Plan
from reconciler.plan.render import action_line, finding_line
from reconciler.plan.serialize import action_to_dict
from reconciler.rules import MANIFEST_STATUS, STEPS, PairState, Selection, classify, mapping_own_space, sides, under
from reconciler.workflow import observe_and_plan, open_stores

EXPLAIN_FORMAT_VERSION = 1


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


def _rel(spec: MappingSpec, store: str | None, key: str) -> str | None:
    """The key relative to the mapping, when `key` lies under either of its sides (either store when None)."""
    for side_store, _ in sides(spec):
        if (store is None or store == side_store) and (rel := under(spec, side_store, key)) is not None:
            return rel
    return None


def _concerns(action: Action, store: str | None, key: str) -> bool:
    refs = [action.target] + ([action.source] if action.source else [])
    return any(ref.key == key and (store is None or ref.store == store) for ref in refs)


def _entry_dict(store: str, key: str, entry: Entry | None) -> dict[str, Any]:
    return {
        "store": store,
        "key": key,
        "present": entry is not None,
        "size": None if entry is None else entry.size,
        "md5": None if entry is None else entry.md5,
    }


@dataclass(frozen=True, slots=True)
class Explanation:
    doc: dict[str, Any]  # plain data: printed as it is by --format json
    actions: list[Action]  # the same actions and findings as objects, for the text's plan lines
    findings: list[Finding]


def explanation(desired: Desired, observed: Observed, plan: Plan, key: str) -> Explanation:
    """What `explain` knows about KEY as plain data: the `--format json` document, and what the text renders.

    Its shape is documented in docs/ci.md (`pixel explain --format json`); add fields, never rename them.
    """
    store, bare = _split(desired, key)
    mappings: list[dict[str, Any]] = []
    unsynced = False  # a side differs or is unknown: "nothing to do" would not mean "both sides agree"
    for spec in desired.mappings:
        rel = _rel(spec, store, bare)
        if rel is None:
            continue
        item: dict[str, Any] = {
            "name": spec.name,
            "declared_in": str(spec.source_file) if spec.source_file else None,
            "local": f"{spec.local_store}:{spec.local_path}",
            "remote": f"{spec.s3_store}:{spec.s3_prefix}",
            "authority": spec.authority.value,
            "prune": spec.prune,
            "protect": spec.protect,
            "release_local": spec.release_local,
            "prune_local": spec.prune_local,
            "include": list(spec.include),
            "exclude": list(spec.exclude),
            "relative_key": rel,
            # The ownership rule with no size at hand: a file below min_size is then absent from both sides.
            "managed": Selection(spec, mapping_own_space(desired, spec))(rel, None),
            "local_side": None,
            "remote_side": None,
            "state": None,
            "manifest_status": None,
            "rule": None,
            "excluded": None,  # an actor image excluded from its manifest (kept in S3): the record's md5 and time
        }
        mappings.append(item)
        if not item["managed"]:
            continue
        obs = observed.mappings.get(spec.name)
        local = obs.local.get(rel) if obs else None
        remote = obs.remote.get(rel) if obs else None
        kept_out = observed.excluded.get(spec.name)
        image = next((i for i in kept_out.images if i.rel == rel), None) if kept_out is not None else None
        if image is not None:
            # Taken out of the observation: shown as it is, under the decision that keeps it out.
            local, remote = image.local, image.remote
            item["excluded"] = {"md5": image.md5, "excluded_at": image.excluded_at, "changed": image.changed}
            unsynced = True
        item["local_side"] = _entry_dict(spec.local_store, spec.local_key(rel), local)
        item["remote_side"] = _entry_dict(spec.s3_store, spec.remote_key(rel), remote)
        if image is None and (local is not None or remote is not None):
            state = classify(local, remote)
            unsynced = unsynced or state is not PairState.SYNCED
            item["state"] = state.value
            item["manifest_status"] = MANIFEST_STATUS[state].value
            item["rule"] = STEPS[state, spec.authority].value
    tiers = [
        {
            "name": tier.name,
            "store": tier.store,
            "prefix": tier.prefix,
            "ownership": tier.ownership.value,
            "protect": tier.protect,
        }
        for tier in desired.tiers
        if (store is None or store == tier.store) and bare.startswith(tier.prefix)
    ]
    datasets = [
        {
            "name": dataset.name,
            "declared_in": str(dataset.source_file) if dataset.source_file else None,
            "role": "canonical" if bare == dataset.key else "source",
            "organise": dataset.organise.value,
            "key": dataset.key,
        }
        for dataset in desired.datasets
        if bare in (dataset.key, dataset.source.key if dataset.source else None)
    ]
    actions = [a for a in plan.actions if _concerns(a, store, bare)]
    findings = [f for f in plan.findings if f.key in (key, bare) or f.key.endswith(":" + bare)]
    covered = bool(mappings or tiers or datasets)
    if actions:
        verdict = "actions"
    elif covered:
        # Nothing to do: either everything agrees, or the sides differ (or there are findings) and the rule leaves it.
        verdict = "leaves_it" if unsynced or findings else "in_sync"
    else:
        verdict = "findings" if findings else "not_covered"
    doc = {
        "format_version": EXPLAIN_FORMAT_VERSION,
        "key": key,
        "store": store,
        "store_key": bare,  # KEY without its store, or a local path as the key under its store's root
        "covered": covered,
        "verdict": verdict,
        "mappings": mappings,
        "tiers": tiers,
        "datasets": datasets,
        "actions": [
            {**action_to_dict(a), "waits_for": [before for before, after in plan.edges if after == a.id]}
            for a in actions
        ],
        "findings": [
            {"kind": f.kind.value, "mapping": f.mapping, "key": f.key, "message": f.message} for f in findings
        ],
    }
    return Explanation(doc, actions, findings)


def _flag(value: object) -> str:
    return str(value).lower()


def _side(side: dict[str, Any]) -> str:
    if not side["present"]:
        return "absent"
    md5 = side["md5"] or "unknown (not an md5 ETag: a rehash learns it)"
    return f"{side['size']} bytes, md5 {md5}"


def render_text(found: Explanation) -> list[str]:
    doc = found.doc
    lines = [f"{doc['key']}:"]
    if doc["store"] is not None and not doc["key"].startswith(f"{doc['store']}:"):
        lines.append(f"  the local file {doc['store']}:{doc['store_key']}")  # KEY was a path on this machine
    for m in doc["mappings"]:
        where = f" (declared in {m['declared_in']})" if m["declared_in"] else ""
        lines.append(f"  mapping {m['name']!r}{where}: {m['local']} ↔ {m['remote']}")
        lines.append(
            f"    authority {m['authority']}, prune {_flag(m['prune'])}, protect {_flag(m['protect'])}, "
            f"release_local {_flag(m['release_local'])}, prune_local {_flag(m['prune_local'])}"
        )
        if not m["managed"]:
            rule = f"include {m['include']}, exclude {m['exclude']}"
            lines.append(f"    not managed: {m['relative_key']!r} does not pass the mapping's filters ({rule})")
            continue
        local, remote = m["local_side"], m["remote_side"]
        lines.append(f"    local  {local['store']}:{local['key']}: {_side(local)}")
        lines.append(f"    remote {remote['store']}:{remote['key']}: {_side(remote)}")
        if m.get("excluded") is not None:
            kept = m["excluded"]
            changed = "; the object in S3 has changed since (see the findings)" if kept["changed"] else ""
            lines.append(
                f"    {KEPT_IN_S3} since {kept['excluded_at']} (md5 {kept['md5']}): not listed, synced or "
                f"deleted{changed}"
            )
        if m["state"] is not None:
            lines.append(
                f"    state {m['state']} (manifest status {m['manifest_status']}): "
                f"under authority {m['authority']} the rule is {m['rule']}"
            )
    for t in doc["tiers"]:
        lines.append(
            f"  tier {t['name']!r}: {t['store']}:{t['prefix']} "
            f"(ownership {t['ownership']}, protect {_flag(t['protect'])})"
        )
    for d in doc["datasets"]:
        role = "canonical path" if d["role"] == "canonical" else f"source ({d['organise']} into {d['key']})"
        declared = f" in {d['declared_in']}" if d["declared_in"] else ""
        lines.append(f"  dataset {d['name']!r}{declared}: {role}")
    actions, findings = found.actions, found.findings
    if actions:
        lines.append("  the plan:")
        lines.extend("  " + action_line(a) for a in actions)
        for action, data in zip(actions, doc["actions"], strict=True):
            if data["waits_for"]:
                lines.append(f"    {action.id} waits for: {', '.join(data['waits_for'])}")
    elif doc["verdict"] == "leaves_it":
        why = "see the findings" if findings else "the sides differ, and the rule above leaves it"
        lines.append(f"  the plan: nothing to do ({why})")
    elif doc["verdict"] == "in_sync":
        lines.append("  the plan: nothing to do (both sides agree with the specs)")
    if findings:
        lines.append("  findings:")
        lines.extend("  " + finding_line(f) for f in findings)
    if doc["verdict"] == "not_covered":
        lines.append("  not covered by any mapping, tier or dataset in the specs: pixel leaves it alone")
    return lines


def explain_key(desired: Desired, observed: Observed, plan: Plan, key: str) -> list[str]:
    return render_text(explanation(desired, observed, plan, key))


def explain(specs: Path, key: str, *, parallelism: int = 16, output_format: OutputFormat = OutputFormat.TEXT) -> int:
    desired = load(specs)
    ws = open_stores(desired, parallelism=parallelism)
    observed, plan = observe_and_plan(ws)
    found = explanation(ws.desired, observed, plan, key)
    if output_format == "json":
        # JSON holds the exact keys, JSON-escaped (ensure_ascii): control characters cannot act on a terminal.
        click.echo(json.dumps(found.doc, indent=2, sort_keys=True))
        return EXIT_OK
    # Each line escaped as a whole: the key asked about, spec paths and observed keys may hold control characters.
    click.echo("\n".join(printable(line) for line in render_text(found)))
    return EXIT_OK
