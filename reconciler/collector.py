"""The cyclic garbage collector paused over work that builds many objects and makes no cycles.

A listing turned into a million entries, or a 200,000-action plan read back, allocates enough tracked objects to
trigger about a dozen full collections, each walking every object built so far (a sixth of observing a million
objects, a fifth of reading a plan) and freeing nothing: entries, keys, md5s and actions form no cycles.
Reference counting still frees everything.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside; the collector left as it was found (a caller may have turned it off)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
