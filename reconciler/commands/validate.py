"""`pixel validate [FILE...]`: load and check the specs against their schemas; no store is opened.

Without FILE the spec directory (`--specs`) is checked. With FILEs (what a pre-commit hook passes: the spec
files a commit changes) each file's directory is checked as the spec set it belongs to: a file is only valid
together with the stores and mappings the other files of its directory declare. Every set is checked, so one
run reports every problem; the exit code is 1 when any set is invalid.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from reconciler.choices import OutputFormat
from reconciler.commands import EXIT_ERROR, EXIT_OK
from reconciler.commands.common import error, load
from reconciler.errors import UserError
from reconciler.model import Desired
from reconciler.spec import SpecError, SpecErrors
from reconciler.spec.errors import display_path
from reconciler.spec.loader import SPEC_SUFFIXES

VALIDATE_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Checked:
    specs: Path
    desired: Desired | None
    errors: tuple[SpecError, ...] = ()
    summary: str = ""  # the one line that closes the errors ("N problems in the specs in DIR/; ...")


def spec_sets(specs: Path, files: tuple[Path, ...]) -> list[Path]:
    """The directories to check: `specs`, or each named file's own directory once, in the order first named.

    A file the loader would not read (another suffix, a dotfile) is refused rather than passed over: a hook
    that "validated" a file pixel never reads would be a green check on nothing.
    """
    if not files:
        return [specs]
    sets: list[Path] = []
    for file in files:
        shown = display_path(Path(os.path.abspath(file)))
        if file.suffix.lower() not in SPEC_SUFFIXES:
            raise UserError(f"{shown}: not a spec file (pixel reads *.yaml and *.yml files)")
        if file.name.startswith("."):
            raise UserError(f"{shown}: pixel skips dotfiles in a spec directory; this file is never read")
        if not file.is_file():
            raise UserError(f"{shown}: no such file")
        directory = file.parent
        if directory not in sets:
            sets.append(directory)
    return sets


def check(specs: Path) -> Checked:
    """One spec set, loaded as every command loads it (its problems are printed on stderr as they are found)."""
    try:
        return Checked(specs, load(specs))
    except UserError as exc:
        cause = exc.__cause__
        errors = cause.errors if isinstance(cause, SpecErrors) else ()
        return Checked(specs, None, errors, str(exc))


def _set_json(checked: Checked) -> dict[str, Any]:
    desired = checked.desired
    return {
        "specs": str(checked.specs),
        "valid": desired is not None,
        "spec_digest": desired.spec_digest if desired else None,
        "counts": None
        if desired is None
        else {
            "stores": len(desired.stores),
            "mappings": len(desired.mappings),
            "tiers": len(desired.tiers),
            "datasets": len(desired.datasets),
            "actors": len(desired.actors),
            "final_dataset": desired.final is not None,
        },
        "errors": [
            {
                "file": display_path(e.file),
                "line": e.line,
                "path": e.path,
                "message": e.message,
                "text": str(e),  # the line `pixel validate` prints, control characters escaped
            }
            for e in checked.errors
        ],
        "summary": checked.summary or None,
    }


def validate(specs: Path, files: tuple[Path, ...] = (), *, output_format: OutputFormat = OutputFormat.TEXT) -> int:
    results = [check(directory) for directory in spec_sets(specs, files)]
    ok = all(r.desired is not None for r in results)
    if output_format == "json":
        document = {
            "format_version": VALIDATE_FORMAT_VERSION,
            "valid": ok,
            "spec_sets": [_set_json(r) for r in results],
        }
        click.echo(json.dumps(document, indent=2, sort_keys=True))
        return EXIT_OK if ok else EXIT_ERROR
    for r in results:
        if r.desired is None:
            error(r.summary)
            continue
        desired = r.desired
        click.echo(f"Specs in {r.specs} are valid: {len(desired.stores)} store(s), {len(desired.mappings)} mapping(s).")
    return EXIT_OK if ok else EXIT_ERROR
