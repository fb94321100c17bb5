"""An object's body, streamed through either transport; a dropped connection resumes where it broke."""

from __future__ import annotations

import contextlib
from typing import Any

from reconciler.stores.base import TransientStoreError
from reconciler.stores.retry import outermost
from reconciler.stores.s3.conditions import conditions
from reconciler.stores.s3.errors import translate_raw
from reconciler.stores.s3.transport import Readable, Transport, sent


class ResumingReader:
    """An object's body, streamed; a dropped connection resumes with a ranged GET where it broke.

    The resumed request carries If-Match on the first response's ETag, so the
    bytes after the break come from the same version of the object as those
    before it (412 otherwise). Memory is one read's worth, whatever the size.
    """

    def __init__(
        self, transport: Transport, key: str, *, resumes: int = 5, etag: str | None = None, start: int = 0,
        stop: int | None = None,
    ) -> None:
        self._transport = transport
        self._key = key
        self._resumes = resumes
        self._position = start
        self._stop = stop  # a ranged read ends here (exclusive)
        self._etag: str | None = etag
        self._body: Readable | None = None
        self._open_at(start)

    def _open_at(self, position: int) -> None:
        params: dict[str, Any] = conditions(if_match=self._etag)
        if position or self._stop is not None:
            params["Range"] = f"bytes={position}-{'' if self._stop is None else self._stop - 1}"
        transport = self._transport
        download = outermost(lambda: sent(transport, "download", self._key, transport.get_object, self._key, params))
        self._etag = self._etag or download.etag
        self._body = download.body

    def read(self, n: int = -1) -> bytes:
        while True:
            assert self._body is not None
            try:
                data = self._body.read(n if n >= 0 else None)
            except Exception as exc:
                # The standard library's network errors and botocore's alike: a body may be either's.
                err = translate_raw(exc, key=self._key, action="download")
                if not isinstance(err, TransientStoreError) or self._resumes <= 0:
                    raise err from exc
                self._resumes -= 1
                with contextlib.suppress(Exception):
                    self._body.close()
                self._open_at(self._position)
                continue
            self._position += len(data)
            return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._body is not None:
                self._body.close()
