"""`pixel import STORE:PREFIX`: a starting spec for data that already exists in a bucket.

What is written: one tier per top-level directory under PREFIX (or one tier for
PREFIX itself when objects sit at its root), each with the sub-directories found
in it as categories, all `ownership: shared`. No mapping is written, on purpose:
a mapping needs a local side, and whichever authority it had would be a claim
import cannot check (push would upload or delete against a local tree that may
not exist; pull would download every byte; report-only would list every object
as a conflict). Tiers are what pixel can state truthfully about data it did not
create: where it is and how it is organised. So `pixel plan` against the result
honestly says No changes, `pixel status` counts every tier, and the file ends
with a commented-out mapping per tier for the team to enable once they decide
which side is the truth.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import click
import yaml

from reconciler.commands import EXIT_OK
from reconciler.commands.common import load
from reconciler.errors import UserError
from reconciler.model import S3StoreSpec
from reconciler.stores.base import StoreError
from reconciler.units import human_bytes
from reconciler.workflow import open_stores

# More top-level directories than this reads as a flat collection, not tiers: one tier with categories then.
MAX_TIERS = 20
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def parse_target(text: str) -> tuple[str, str]:
    store, sep, prefix = text.partition(":")
    if not sep or not store:
        raise UserError(f"import needs STORE:PREFIX (e.g. pixel-data:datasets/gdrive/), got {text!r}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if ".." in prefix.split("/"):
        raise UserError(f"import prefix {prefix!r} contains '..'")
    return store, prefix


def spec_name(text: str) -> str:
    """A directory name as a spec name (letters, digits, . _ -, starting with a letter or digit)."""
    name = _NAME.sub("-", text).strip("-._")
    return name or "root"


def infer_tiers(store: str, prefix: str, keys: list[str]) -> dict[str, dict[str, object]]:
    """Tiers and categories from the key structure under `prefix` (keys are full keys)."""
    top: dict[str, set[str]] = defaultdict(set)
    at_root = False
    for key in keys:
        parts = key[len(prefix) :].split("/")
        if len(parts) == 1:
            at_root = True
            continue
        subdirs = top[parts[0]]
        if len(parts) > 2:
            subdirs.add(parts[1])
    if at_root or not top or len(top) > MAX_TIERS:
        name = spec_name(prefix.rstrip("/").rsplit("/", 1)[-1] if prefix else store)
        return {name: _tier(store, prefix, sorted(top))}
    tiers: dict[str, dict[str, object]] = {}
    for directory in sorted(top):
        name = spec_name(directory)
        while name in tiers:
            name += "_"
        tiers[name] = _tier(store, f"{prefix}{directory}/", sorted(top[directory]))
    return tiers


def _tier(store: str, prefix: str, categories: list[str]) -> dict[str, object]:
    tier: dict[str, object] = {"at": f"{store}:{prefix}", "ownership": "shared"}
    # Only names the spec schema accepts can be categories; odd directory names stay plain directories.
    names = [c for c in categories if spec_name(c) == c]
    if names:
        tier["categories"] = names
    return tier


def render_spec(store: str, prefix: str, tiers: dict[str, dict[str, object]], objects: int, size: int) -> str:
    header = [
        f"# Imported by `pixel import {store}:{prefix}`: {objects:,} objects ({human_bytes(size)}).",
        "# Tiers and categories were inferred from the key structure. They are shared: pixel never",
        "# deletes in them. No mapping is declared yet, so `pixel plan` says No changes and",
        "# `pixel status` counts each tier. To manage a tier, enable its mapping below, pick the",
        "# local directory and which side is the truth (local: push, s3: pull, none: report only).",
    ]
    body = yaml.safe_dump({"tiers": tiers}, sort_keys=False, default_flow_style=False)
    footer = ["", "# mappings:"]
    for name, tier in tiers.items():
        footer += [
            f"#   - name: {name}",
            f"#     from: LOCAL_STORE:{name}",
            f"#     to: {tier['at']}",
            "#     authority: s3",
        ]
    return "\n".join(header) + "\n" + body + "\n".join(footer) + "\n"


def import_prefix(specs: Path, target: str, *, specs_out: Path | None = None, force: bool = False) -> int:
    store_name, prefix = parse_target(target)
    desired = load(specs)
    spec = desired.stores.get(store_name)
    if not isinstance(spec, S3StoreSpec):
        known = ", ".join(sorted(n for n, s in desired.stores.items() if isinstance(s, S3StoreSpec))) or "none"
        raise UserError(f"{store_name!r} is not an S3 store declared in {specs} (S3 stores: {known})")
    out = specs_out or specs / f"imported-{spec_name(store_name)}.yaml"
    if out.exists() and not force:
        raise UserError(f"{out} already exists; pass --force to overwrite it or --specs-out to write elsewhere")
    ws = open_stores(desired)
    try:
        entries = list(ws.stores[store_name].list(prefix))
    except StoreError as exc:
        raise UserError(f"could not list {store_name}:{prefix}: {exc}") from exc
    if not entries:
        raise UserError(f"nothing to import: {store_name}:{prefix} holds no objects")
    tiers = infer_tiers(store_name, prefix, [e.key for e in entries])
    clash = {t.name for t in desired.tiers} & tiers.keys()
    if clash and out.parent.resolve() == specs.resolve():
        raise UserError(f"the specs in {specs} already declare tier(s) {', '.join(sorted(clash))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_spec(store_name, prefix, tiers, len(entries), sum(e.size for e in entries)))
    click.echo(
        f"Wrote {out}: {len(tiers)} tier(s) for {len(entries):,} objects under {store_name}:{prefix}. "
        f"Run `pixel plan --specs {out.parent}` to check it (expect: No changes)."
    )
    return EXIT_OK
