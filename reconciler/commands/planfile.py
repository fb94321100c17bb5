"""Saved plan files on disk: `plan/serialize.py` turns a plan into text and back, this writes and reads the file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from reconciler.model import Plan
from reconciler.plan.guards import GuardLimits
from reconciler.plan.serialize import PlanFileError, SavedPlan, dumps, loads, loads_saved


def dump(plan: Plan, path: Path, *, limits: GuardLimits | None = None) -> None:
    """Write atomically (temp + fsync + rename) so a crash never leaves half a plan file behind.

    Pass the `limits` the plan was checked with: `pixel apply FILE` derives the guards again with them.
    """
    text = dumps(plan, limits=limits)
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise PlanFileError(f"cannot write the plan file {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PlanFileError(f"plan file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"plan file {path} cannot be read: {exc}") from exc


def load(path: Path) -> Plan:
    return loads(_read(path), source=str(path))


def load_saved(path: Path) -> SavedPlan:
    """A plan file for `pixel apply FILE`: the plan and the guard limits it records."""
    return loads_saved(_read(path), source=str(path))
