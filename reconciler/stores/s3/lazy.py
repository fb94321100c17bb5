"""A module imported on first attribute access, for the imports only some paths need.

boto3 and botocore take longer to import than a warm no-op plan takes to do
everything else; that plan never calls them (stores/s3/direct/raw.py's `direct()`), an
apply or a plan that needs botocore's credential chain does. `lazy("botocore")`
stands for the package and its submodules: `botocore.exceptions.ClientError`
imports `botocore.exceptions` the first time it is read.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        module = importlib.import_module(self._name)
        try:
            value = importlib.import_module(f"{self._name}.{attr}")
        except ModuleNotFoundError:
            value = getattr(module, attr)
        # Read once: later reads find it on the instance and never come back here.
        setattr(self, attr, value)
        return value


def lazy(name: str) -> Any:
    return LazyModule(name)
