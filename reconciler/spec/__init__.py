"""Spec loading: YAML files -> ${ENV} interpolation -> JSON-Schema validation -> `Desired`.

`load_desired(Path("specs"), os.environ)` returns the Desired state or raises
`SpecErrors`, whose `errors` each print as one line such as
`specs/layout.yaml:12: mappings[2].to: expected ...`.
"""

from reconciler.schemas import load_schema, schema_path
from reconciler.spec.errors import SpecError, SpecErrors
from reconciler.spec.loader import load_desired

__all__ = ["SpecError", "SpecErrors", "load_desired", "load_schema", "schema_path"]
