"""Functions a test runs inside a Dask worker process (importable there: the worker has the test's sys.path)."""

from __future__ import annotations

import os

from reconciler.apply import dask_worker

_real_is_dir = dask_worker._is_dir


def hide_root(root: str) -> int:
    """This worker stops seeing `root`, as a worker without the shared filesystem mounted would."""
    dask_worker._is_dir = lambda path: path != root and _real_is_dir(path)
    return os.getpid()


def show_roots() -> int:
    dask_worker._is_dir = _real_is_dir
    return os.getpid()


def pid() -> int:
    return os.getpid()
