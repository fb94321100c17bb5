"""Saved plan files on disk: `plan/savedfile.py` lays a plan out a line at a time and reads it back as it streams;
`plan/serialize.py` is the one JSON form both follow. This writes and reads the file."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from reconciler.model import Plan
from reconciler.paths import atomic_file
from reconciler.plan import savedfile
from reconciler.plan.guards import GuardLimits
from reconciler.plan.serialize import PlanFileError, SavedPlan, loads_saved


def dump(plan: Plan, path: Path, *, limits: GuardLimits | None = None) -> None:
    """Write atomically (temp + fsync + rename) so a crash never leaves half a plan file behind.

    Pass the `limits` the plan was checked with: `pixel apply FILE` derives the guards again with them.
    """
    with atomic_file(path, refuse=PlanFileError, what="plan file") as handle:
        handle.writelines(savedfile.lines(plan, limits=limits))


def _whole(handle: BinaryIO, path: Path) -> SavedPlan:
    """The plan file read as one document: any layout JSON allows, and the refusal worded for what is wrong."""
    handle.seek(0)
    try:
        text = handle.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanFileError(f"plan file {path} cannot be read: {exc}") from exc
    # As open(path).read() would: universal newlines, so a refusal names the line and column it always named. JSON
    # strings hold no raw carriage return, so only whitespace between tokens changes.
    return loads_saved(text.replace("\r\n", "\n").replace("\r", "\n"), source=str(path))


def load_saved(path: Path) -> SavedPlan:
    """A plan file for `pixel apply FILE`: the plan and the guard limits it records."""
    try:
        with open(path, "rb") as handle:
            framed = savedfile.read(handle, source=str(path))
            return framed if framed is not None else _whole(handle, path)
    except FileNotFoundError as exc:
        raise PlanFileError(f"plan file {path} does not exist") from exc
    except OSError as exc:
        raise PlanFileError(f"plan file {path} cannot be read: {exc}") from exc


def load(path: Path) -> Plan:
    return load_saved(path).plan
