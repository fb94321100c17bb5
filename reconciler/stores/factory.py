"""The one place a Store is made from its spec: the CLI, the service, the Dask workers and the loader all ask here.

S3Store is imported only when an S3 store is built, so a process that reads only local stores (a loader over
local files, the service in degraded mode) never imports boto3.
"""

from __future__ import annotations

from reconciler.model import LocalStoreSpec, S3StoreSpec, StoreSpec
from reconciler.stores.base import Store
from reconciler.stores.local import LocalStore

DEFAULT_PARALLELISM = 16


def build_store(spec: StoreSpec, *, parallelism: int = DEFAULT_PARALLELISM) -> Store:
    """A Store from its (secret-free) spec; credentials come from this process's environment.

    `parallelism`: how many requests the caller keeps in flight at once. An S3 store lists that many ranges
    concurrently and keeps a few more connections than that, for the lock and journal writes beside them.
    """
    if isinstance(spec, S3StoreSpec):
        from reconciler.stores.s3 import S3Store

        return S3Store(spec, max_pool_connections=parallelism + 8, list_concurrency=parallelism)
    assert isinstance(spec, LocalStoreSpec)
    return LocalStore(spec.name, spec.root)
