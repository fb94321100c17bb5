"""Kept-alive HTTP/1.1 connections to one S3 endpoint, on the standard library's http.client.

The direct S3 requests (stores/s3/direct/raw.py) are many and small: through urllib3 a
small PUT cost 0.92 ms of CPU, through http.client 0.41 ms (measured in one run
against SeaweedFS on loopback). This keeps what urllib3 was used for: a pool of
idle connections, a connection the server closed meanwhile is not reused, a
connect timeout apart from the read timeout, TLS verified against the CA bundle
botocore would use.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import select
import socket
import ssl
import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from reconciler.stores.s3.deadlines import DEFAULT_CONNECT, DEFAULT_READ

NETWORK_ERRORS: tuple[type[BaseException], ...] = (http.client.HTTPException, OSError)
SEND_BLOCK = 1024 * 1024  # http.client writes a file body 8 KiB at a time by default
# A body up to this size goes out in the same write as its request's headers (pixel's small-file PUTs).
JOINED_BODY = 1024 * 1024


class DeadlineExceeded(TimeoutError):
    """No connection, or no progress, within a deadline: the message names the endpoint and which one.

    A TimeoutError still (one of NETWORK_ERRORS), but never resent at once like a dropped connection: the
    server is there and not answering, and a command must not wait that long twice for each request.
    """


def _said(seconds: float) -> str:
    return f"{seconds:g} s"


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: Mapping[str, str]  # as received; look up with get() (case-insensitive)
    data: bytes


def ca_bundle() -> str | None:
    """botocore's default CA bundle (httpsession.get_cert_path): certifi's, else the one botocore ships.

    Found without importing botocore, which a warm no-op plan does not otherwise need.
    """
    for package, relative in (("certifi", "cacert.pem"), ("botocore", "cacert.pem")):
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = os.path.join(folder, relative)
            if os.path.isfile(path):
                return path
    return None


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """True when an idle kept-alive connection was closed by the server (readable with nothing asked)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


_POOLS: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()


def _forget_after_fork() -> None:
    """In a forked child (a DataLoader worker of a process that had read): the parent's kept-alive connections
    stay the parent's. Two processes on one socket would read each other's answers, a HEAD of one key taken
    for another's; the child opens its own. Forgotten, not closed: closing would only drop the child's copy of
    the descriptor anyway. The lock too is new: a thread of the parent may have held it at the fork."""
    for pool in list(_POOLS):
        pool._lock = threading.Lock()
        pool._idle = []


os.register_at_fork(after_in_child=_forget_after_fork)


class _Joining(http.client.HTTPConnection):
    """A connection that writes a small request body together with its headers: one `sendmsg` (one
    record under TLS) where http.client makes two writes, the headers and then the body, per request.

    http.client hands `send` the header block and then the body; told to join (`join_next`), the first is
    held back until the second arrives. Anything else sent meanwhile goes after the held block, in order.
    """

    _held: bytes | None = None
    _joining = False

    def join_next(self) -> None:
        self._joining, self._held = True, None

    def send(self, data: Any) -> None:
        if self._joining and self._held is None and isinstance(data, bytes):
            self._held = data  # the header block
            return
        held, self._held, self._joining = self._held, None, False
        if held is None:
            super().send(data)
        elif isinstance(data, bytes | bytearray | memoryview) and self.sock is not None:
            _write_both(self.sock, held, memoryview(data).cast("B"))
        else:
            super().send(held)
            super().send(data)


class _JoiningTLS(_Joining, http.client.HTTPSConnection):
    pass


def _write_both(sock: socket.socket, head: bytes, body: memoryview) -> None:
    """`head` then `body`, written as one: sendmsg (no copy) where the socket has it, else one joined buffer."""
    if isinstance(sock, ssl.SSLSocket):  # no sendmsg under TLS: one record of both, a small copy
        sock.sendall(head + body)
        return
    pieces = [memoryview(head), body]
    while pieces:
        sent = sock.sendmsg(pieces)
        while pieces and sent >= len(pieces[0]):
            sent -= len(pieces[0])
            pieces.pop(0)
        if pieces and sent:
            pieces[0] = pieces[0][sent:]


class ConnectionPool:
    def __init__(
        self,
        scheme: str,
        netloc: str,
        *,
        size: int,
        connect_timeout: float = DEFAULT_CONNECT,
        read_timeout: float = DEFAULT_READ,
    ) -> None:
        self.scheme, self.netloc = scheme, netloc
        self._size = size
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._idle: list[_Joining] = []
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        if scheme == "https":
            self._tls = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or ca_bundle())
        _POOLS.add(self)

    def _new(self) -> _Joining:
        conn: _Joining
        if self._tls is not None:
            conn = _JoiningTLS(self.netloc, timeout=self._connect_timeout, context=self._tls, blocksize=SEND_BLOCK)
        else:
            conn = _Joining(self.netloc, timeout=self._connect_timeout, blocksize=SEND_BLOCK)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise DeadlineExceeded(
                f"no connection to {self.endpoint} within the connect deadline of {_said(self._connect_timeout)} "
                "(connect_timeout, PIXEL_S3_CONNECT_TIMEOUT)"
            ) from exc
        assert conn.sock is not None
        conn.sock.settimeout(self._read_timeout)
        return conn

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    def stalled(self, exc: TimeoutError) -> DeadlineExceeded:
        """A read or send that made no progress for the read deadline, as the error that says so."""
        if isinstance(exc, DeadlineExceeded):
            return exc
        return DeadlineExceeded(
            f"no progress from {self.endpoint} for the read deadline of {_said(self._read_timeout)}: it accepted "
            "the connection but stopped answering (read_timeout, PIXEL_S3_READ_TIMEOUT)"
        )

    def _take(self) -> _Joining:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._new()
            if not _dropped(conn):
                return conn
            conn.close()

    def _give_back(self, conn: _Joining) -> None:
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append(conn)
                return
        conn.close()

    def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | bytearray | memoryview | BinaryIO | None,
        headers: Mapping[str, str],
    ) -> Response:
        """One request and its whole response; raises one of NETWORK_ERRORS when the exchange fails."""
        conn = self._take()
        with self._closed_on_failure(conn):
            if isinstance(body, bytes | bytearray | memoryview) and 0 < memoryview(body).nbytes <= JOINED_BODY:
                conn.join_next()
            conn.request(method, target, body=body, headers=dict(headers))
            response = conn.getresponse()
            data = response.read()
        if response.will_close:
            conn.close()
        else:
            self._give_back(conn)
        return Response(response.status, response.reason, response.headers, data)  # type: ignore[arg-type]

    def warm(self, count: int) -> None:
        """Open connections in the background until `count` are idle, all at once: each connect is a round
        trip, which a listing cut into `count` ranges would otherwise pay before its first page. A request
        meanwhile opens its own; failures are left to the requests that follow."""

        def one() -> None:
            try:
                conn = self._new()
            except OSError:
                return
            self._give_back(conn)

        with self._lock:
            missing = min(count, self._size) - len(self._idle)
        for _ in range(missing):
            threading.Thread(target=one, name="pixel-connect", daemon=True).start()

    def stream(self, method: str, target: str, *, headers: Mapping[str, str]) -> Streamed:
        """One request whose body is read as it arrives; the connection goes back to the pool once it is
        read whole, and is closed if the reader stops before that."""
        conn = self._take()
        with self._closed_on_failure(conn):
            conn.request(method, target, headers=dict(headers))
            response = conn.getresponse()
        return Streamed(self, conn, response)

    @contextlib.contextmanager
    def _closed_on_failure(self, conn: _Joining) -> Iterator[None]:
        """A failed exchange leaves the connection mid-request: closed, never given back; a timeout is a stall."""
        try:
            yield
        except TimeoutError as exc:
            conn.close()
            raise self.stalled(exc) from exc
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class Streamed:
    """A response body read a piece at a time: read(n) and close(), like a file."""

    def __init__(self, pool: ConnectionPool, conn: _Joining, response: http.client.HTTPResponse):
        self.status, self.reason = response.status, response.reason
        self.headers: Mapping[str, str] = response.headers  # type: ignore[assignment]
        self._pool, self._conn, self._response = pool, conn, response
        self._open = True

    def read(self, n: int | None = -1) -> bytes:
        """Up to `n` bytes (all that is left when n is None or < 0); b"" at the end. A body cut short raises
        IncompleteRead, one of NETWORK_ERRORS: http.client itself returns b"" for it."""
        if not self._open:
            return b""
        try:
            data = self._response.read(n if n is not None and n >= 0 else None)
            left = self._response.length
            if not data and n != 0 and left:
                raise http.client.IncompleteRead(b"", left)
        except TimeoutError as exc:  # the body stalled midway
            self._drop()
            raise self._pool.stalled(exc) from exc
        except BaseException:
            self._drop()
            raise
        if self._response.isclosed():  # the body is read whole: the connection can carry another request
            self._open = False
            if self._response.will_close:
                self._conn.close()
            else:
                self._pool._give_back(self._conn)
        return data

    def _drop(self) -> None:
        if self._open:
            self._open = False
            self._conn.close()

    def close(self) -> None:
        """Stopping early: the rest of the body is not read, so the connection cannot be reused."""
        self._drop()
