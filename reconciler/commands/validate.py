"""`pixel validate`: load and check the specs against their schemas; no store is opened."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.commands import EXIT_OK
from reconciler.commands.common import load


def validate(specs: Path) -> int:
    desired = load(specs)
    click.echo(f"Specs in {specs} are valid: {len(desired.stores)} store(s), {len(desired.mappings)} mapping(s).")
    return EXIT_OK
