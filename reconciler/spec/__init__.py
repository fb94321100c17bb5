"""Spec loading: YAML files -> ${ENV} interpolation -> JSON-Schema validation -> `Desired`.

`load_specs(Path("specs"), os.environ)` returns the Desired state or `SpecErrors`, whose `errors` each
print as one line such as `specs/layout.yaml:12: mappings[2].to: expected ...`; it prints nothing, and is
what the CLI, the service and the loader call. `load_desired` is the builder under it (it raises the
errors, and takes its known-valid cache as an argument); it is imported on first use, as it brings PyYAML,
which a warm `load_specs` never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.schemas import load_schema, schema_path
from reconciler.spec.entry import load_specs
from reconciler.spec.errors import SpecError, SpecErrors

if TYPE_CHECKING:
    from reconciler.spec.loader import load_desired

__all__ = ["SpecError", "SpecErrors", "load_desired", "load_schema", "load_specs", "schema_path"]


def __getattr__(name: str) -> object:
    if name == "load_desired":
        from reconciler.spec.loader import load_desired

        return load_desired
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
