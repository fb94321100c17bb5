"""The one way into the specs for every edge (the CLI, the service, the loader): a Desired or its errors.

It prints nothing and raises nothing for a bad spec directory: each caller says the errors its own way (the
CLI one located line each on stderr, the service a 503 body, the loader an exception). A warm load reads the
spec files' bytes and takes the Desired built from them last time (`desiredcache.py`): neither YAML nor the
loader is imported then. Otherwise the loader builds it, skipping the JSON Schema for documents already known
valid, and a clean result is remembered for the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from reconciler.model import Desired
from reconciler.paths import desired_cache_dir, valid_specs_file
from reconciler.spec import desiredcache
from reconciler.spec.errors import SpecErrors
from reconciler.spec.files import SpecFiles, read_spec_files


def load_specs(spec_dir: Path, env: Mapping[str, str]) -> Desired | SpecErrors:
    """The Desired state of `spec_dir` with `${VAR}` from `env`, or every located problem (file, YAML path,
    line) in file then line order; the cache directory is `env`'s too."""
    read = read_spec_files(spec_dir)
    slot = _slot(read, env) if read is not None else None
    if slot is not None and (hit := desiredcache.cached(*slot, env)) is not None:
        return hit
    # Only a directory that must be read as YAML pays for the loader, PyYAML and the schema's digest.
    from reconciler.spec.loader import load_desired
    from reconciler.spec.validate import SPEC_SCHEMA
    from reconciler.spec.validcache import ValidCache

    recording = desiredcache.RecordingEnv(env)
    try:
        desired = load_desired(spec_dir, recording, ValidCache(valid_specs_file(env), SPEC_SCHEMA), read=read)
    except SpecErrors as exc:
        return exc
    if slot is not None:
        # Not written: the next run loads the specs again, slower and never wrong.
        with contextlib.suppress(desiredcache.Uncacheable, OSError):
            desiredcache.remember(*slot, recording.names, env, desired)
    return desired


def _slot(read: SpecFiles, env: Mapping[str, str]) -> tuple[Path, str] | None:
    """(the cache file, the key) of these spec files; None when they cannot be cached. One file per spec
    directory and working directory (the Desired's file names are relative to it), so two spec directories used
    in turn keep their own."""
    key = desiredcache.inputs_digest(read)
    if key is None:
        return None
    place = hashlib.sha256(f"{read.directory}\0{os.getcwd()}".encode()).hexdigest()[:32]
    return desired_cache_dir(env) / f"{place}.json", key
