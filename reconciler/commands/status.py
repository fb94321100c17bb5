"""`pixel status`: read-only sync status per tier and per actor, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_OK
from reconciler.commands.common import load
from reconciler.keys import printable
from reconciler.plan.status import status_document
from reconciler.progress import observe_progress
from reconciler.rules import STATUSES
from reconciler.units import human_bytes
from reconciler.workflow import observe_and_plan, open_stores


def _cells(counts: dict[str, Any]) -> list[str]:
    return [f"{counts[s]['count']} ({human_bytes(counts[s]['bytes'])})" for s in STATUSES]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    # Names come from directory names (discovered actors): escaped before the columns are measured.
    rows = [[printable(str(cell)) for cell in row] for row in rows]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def render_status_text(document: dict[str, Any]) -> str:
    lines: list[str] = []
    if document["tiers"]:
        rows = [
            [name, *_cells(t), f"{t['objects']['count']} ({human_bytes(t['objects']['bytes'])})"]
            for name, t in document["tiers"].items()
        ]
        lines += [*_table(["TIER", *STATUSES, "objects"], rows), ""]
    if document["actors"]:
        rows = [
            [actor_id, a["name"], *_cells(a), str(a["orphans"]), str(a["missing"])]
            for actor_id, a in document["actors"].items()
        ]
        lines += [*_table(["ACTOR", "name", *STATUSES, "orphans", "missing"], rows), ""]
        kept = [(actor_id, a["excluded"]) for actor_id, a in document["actors"].items() if a.get("excluded")]
        lines += [
            f"actor {printable(actor_id)}: excluded from the manifest (kept in S3): {', '.join(map(printable, names))}"
            for actor_id, names in kept
        ]
        lines += [""] if kept else []
    if document["mappings"]:
        rows = [[name, *_cells(m)] for name, m in document["mappings"].items()]
        lines += [*_table(["MAPPING", *STATUSES], rows), ""]
    if document.get("datasets"):
        d = document["datasets"]
        lines += [f"Datasets: {d['organised']} organised, {d['pending']} to organise, {d['missing']} missing.", ""]
    if "final_dataset" in document:
        lines += [*final_lines(document["final_dataset"]), ""]
    totals = document["totals"]
    parts = [f"{totals[s]['count']} {s}" for s in STATUSES]
    lines.append(f"Total: {', '.join(parts)}; {totals['orphans']} orphan(s), {totals['missing']} missing.")
    return "\n".join(lines) + "\n"


def final_lines(final: dict[str, Any]) -> list[str]:
    published = final["published"]
    if published is None:
        return [f"Final dataset: not published; {final['rebuild_reason'] or 'its sources are not all there yet'}."]
    state = "current" if final["current"] else f"NOT current ({final['rebuild_reason']})"
    lines = [
        f"Final dataset: {state}; build {published['build'][:12]} of {published['created']}, "
        f"{published['shards']} shards, {published['records']:,} records, {human_bytes(published['bytes'])}."
    ]
    rows = [[n, str(t["shards"]), f"{t['records']:,}", human_bytes(t["bytes"])] for n, t in published["splits"].items()]
    return lines + _table(["SPLIT", "shards", "records", "bytes"], rows)


def status(specs: Path, *, output_format: OutputFormat = OutputFormat.TEXT, parallelism: int = 16) -> int:
    """Observe (hash cache on) and report; never writes to a store and takes no lock."""
    desired = load(specs)
    ws = open_stores(desired, parallelism=parallelism)
    with observe_progress(output_format=output_format) as progress:
        observed, plan = observe_and_plan(ws, progress=progress)
    document = status_document(ws.desired, observed, plan)
    if output_format == "json":
        click.echo(json.dumps(document, indent=2, sort_keys=True))
    elif output_format == "markdown":
        # The aligned tables read best as they are: fenced, so GitHub keeps the columns.
        click.echo(f"### pixel status\n\n```\n{render_status_text(document)}```\n", nl=False)
    else:
        click.echo(render_status_text(document), nl=False)
    return EXIT_OK
