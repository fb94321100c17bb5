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
from collections.abc import Iterable, Iterator, Mapping
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


def no_connection(endpoint: str, seconds: float) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"no connection to {endpoint} within the connect deadline of {_said(seconds)} "
        "(connect_timeout, PIXEL_S3_CONNECT_TIMEOUT)"
    )


def no_progress(endpoint: str, seconds: float) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"no progress from {endpoint} for the read deadline of {_said(seconds)}: it accepted "
        "the connection but stopped answering (read_timeout, PIXEL_S3_READ_TIMEOUT)"
    )


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


class Headers(Mapping[str, str]):
    """A response's header block: names looked up case-insensitively, the first of a repeated name winning,
    as http.client's email-based HTTPMessage answers `get`; `items()` gives every field in the order sent.

    http.client parses a response's headers with the email package: some 0.1-0.2 ms of CPU per response,
    a quarter of what a small PUT costs pixel on loopback, and the upload rate of a tree of small files
    is that CPU. This reads the same lines (http.client's limits on their length and number) into a dict.
    """

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        self._first: dict[str, str] = {}
        for name, value in fields:
            self._first.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self._fields:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len(self._first)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]  # every field, repeats too
        return list(self._fields)

    def get_all(self, name: str, failobj: Any = None) -> list[str] | Any:
        """Every value of `name` (HTTPResponse.getheader asks for this)."""
        found = [value for key, value in self._fields if key.lower() == name.lower()]
        return found or failobj


def read_headers(fp: BinaryIO) -> Headers:
    """The header lines up to the blank one, as http.client.parse_headers reads them (its line length and
    count limits, latin-1, a folded line joined to the one before), without the email package."""
    lines = http.client._read_headers(fp)[:-1]  # type: ignore[attr-defined]  # the last: the blank line
    return header_block(line.decode("iso-8859-1") for line in lines)


def header_block(lines: Iterable[str]) -> Headers:
    """Header lines (latin-1 text, with or without their CRLF) as Headers: a folded line joined to the one
    before, a line without a colon left out, a value's leading blanks dropped."""
    fields: list[tuple[str, str]] = []
    for text in lines:
        if text[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if colon:
            fields.append((name, value.lstrip(" \t").rstrip("\r\n")))
    return Headers(fields)


class _LeanResponse(http.client.HTTPResponse):
    """http.client's response with its headers read by `read_headers`; the rest of `begin` as the standard
    library's (Python 3.11 to 3.13): the status, a 100 Continue skipped, chunked or sized, closing or not."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        headers = read_headers(self.fp)
        self.headers = self.msg = headers
        encoding = headers.get("transfer-encoding")
        self.chunked = bool(encoding and encoding.lower() == "chunked")
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200 or (
            self._method == "HEAD"
        ):
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class _Joining(http.client.HTTPConnection):
    """A connection that writes a small request body together with its headers: one `sendmsg` (one
    record under TLS) where http.client makes two writes, the headers and then the body, per request.

    http.client hands `send` the header block and then the body; told to join (`join_next`), the first is
    held back until the second arrives. Anything else sent meanwhile goes after the held block, in order.
    """

    _held: bytes | None = None
    _joining = False
    response_class = _LeanResponse

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
            raise no_connection(self.endpoint, self._connect_timeout) from exc
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
        return no_progress(self.endpoint, self._read_timeout)

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
