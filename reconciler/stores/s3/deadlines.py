"""How long any S3 request may wait: to connect, and for each next byte of an answer or of a transfer.

A server that accepts the connection and never answers must end the command with an error naming it,
not hang it: every request, botocore's and the direct path's, carries both deadlines. The read deadline
bounds the wait for any progress (the socket's timeout applies to each receive and each send), so a
transfer that stalls midway is detected by lack of progress, however long the transfer is as a whole.

Where each comes from, the first that says: the command-line flag (`--s3-connect-timeout`,
`--s3-read-timeout`, held here for the command's duration by `overridden`), the environment
(PIXEL_S3_CONNECT_TIMEOUT, PIXEL_S3_READ_TIMEOUT), the store's spec (`connect_timeout`, `read_timeout`),
the defaults: botocore's own read deadline, and a connect deadline generous for a far region.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from reconciler.model import S3StoreSpec
from reconciler.stores.base import PermanentStoreError

DEFAULT_CONNECT = 10.0
DEFAULT_READ = 60.0
ENV_CONNECT = "PIXEL_S3_CONNECT_TIMEOUT"
ENV_READ = "PIXEL_S3_READ_TIMEOUT"


@dataclass(frozen=True, slots=True)
class Deadlines:
    connect: float = DEFAULT_CONNECT
    read: float = DEFAULT_READ


# The flags' values while a command runs (None: not given); a process-wide setting, since the requests are
# sent from worker threads a context variable would not reach.
_flags: tuple[float | None, float | None] = (None, None)


@contextlib.contextmanager
def overridden(connect: float | None, read: float | None) -> Iterator[None]:
    """The command-line deadlines for the stores built inside the block."""
    global _flags
    before, _flags = _flags, (connect, read)
    try:
        yield
    finally:
        _flags = before


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise PermanentStoreError(f"{name}={text!r}: expected a number of seconds above 0", code="BadDeadline")
    return value


def deadlines(spec: S3StoreSpec, environ: Mapping[str, str] | None = None) -> Deadlines:
    env = os.environ if environ is None else environ
    flag_connect, flag_read = _flags

    def pick(flag: float | None, variable: str, configured: float | None, default: float) -> float:
        if flag is not None:
            return flag
        if env.get(variable):
            return _seconds(variable, env[variable])
        return configured if configured is not None else default

    return Deadlines(
        connect=pick(flag_connect, ENV_CONNECT, spec.connect_timeout, DEFAULT_CONNECT),
        read=pick(flag_read, ENV_READ, spec.read_timeout, DEFAULT_READ),
    )
