"""The one way into the specs for every edge (the CLI, the service, the loader): a Desired or its errors.

It prints nothing and raises nothing for a bad spec directory: each caller says the errors its own way (the
CLI one located line each on stderr, the service a 503 body, the loader an exception). Documents already known
valid are remembered in pixel's cache directory, so a warm load skips the JSON Schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reconciler.model import Desired
from reconciler.paths import valid_specs_file
from reconciler.spec.errors import SpecErrors
from reconciler.spec.loader import load_desired
from reconciler.spec.validate import SPEC_SCHEMA
from reconciler.spec.validcache import ValidCache


def load_specs(spec_dir: Path, env: Mapping[str, str]) -> Desired | SpecErrors:
    """The Desired state of `spec_dir` with `${VAR}` from `env`, or every located problem (file, YAML path,
    line) in file then line order; the cache directory is `env`'s too."""
    try:
        return load_desired(spec_dir, env, ValidCache(valid_specs_file(env), SPEC_SCHEMA))
    except SpecErrors as exc:
        return exc
