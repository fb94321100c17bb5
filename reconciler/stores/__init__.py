"""Storage back ends behind one protocol. Only `s3/` imports boto3."""

from reconciler.stores.base import (
    ObjectChanged,
    OpenSource,
    PermanentStoreError,
    Store,
    StoreError,
    TransientStoreError,
)

__all__ = [
    "ObjectChanged",
    "OpenSource",
    "PermanentStoreError",
    "Store",
    "StoreError",
    "TransientStoreError",
]
