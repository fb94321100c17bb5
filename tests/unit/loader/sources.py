"""A fetch() for the object cache's tests that counts how often the object was fetched."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import BinaryIO


class CountingSource:
    """fetch() of `body`, counting fetches: a cache hit must not fetch, a miss fetches once."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.fetches = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[BinaryIO]:
        self.fetches += 1
        yield io.BytesIO(self.body)
