"""The direct transport's connections: reused only once a body was read whole, and never across a fork."""

from __future__ import annotations

import http.client
import http.server
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.stores.s3.direct.http_pool import JOINED_BODY, NETWORK_ERRORS, ConnectionPool, _write_both

BODY = bytes(range(256)) * 1024  # 256 KiB


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    connections = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept alive

    def setup(self) -> None:
        super().setup()
        assert isinstance(self.server, _Server)
        self.server.connections += 1

    def do_GET(self) -> None:  # http.server calls it by this name
        short = self.path == "/short"
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY[: len(BODY) // 2] if short else BODY)
        if short:
            self.close_connection = True

    def do_PUT(self) -> None:  # echoes the body: what the server read of it
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    # shutdown() waits for serve_forever's next poll: at the default 0.5 s that was most of each test.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def pool_for(server: _Server) -> ConnectionPool:
    return ConnectionPool("http", f"127.0.0.1:{server.server_address[1]}", size=4)


def test_a_body_read_whole_gives_its_connection_back_for_the_next_request(server: _Server) -> None:
    pool = pool_for(server)
    for _ in range(3):
        streamed = pool.stream("GET", "/object", headers={})
        pieces = []
        while data := streamed.read(100_000):
            pieces.append(data)
        assert b"".join(pieces) == BODY and streamed.status == 200
    assert server.connections == 1
    pool.close()


def test_a_reader_that_stops_early_closes_the_connection_instead(server: _Server) -> None:
    pool = pool_for(server)
    streamed = pool.stream("GET", "/object", headers={})
    assert streamed.read(1000) == BODY[:1000]
    streamed.close()
    assert streamed.read(10) == b""
    again = pool.stream("GET", "/object", headers={})
    assert again.read(-1) == BODY
    assert server.connections == 2  # the half-read connection was not handed out again
    pool.close()


def test_a_body_cut_short_raises_a_network_error_not_a_silent_end(server: _Server) -> None:
    pool = pool_for(server)
    streamed = pool.stream("GET", "/short", headers={})
    got = b""
    with pytest.raises(NETWORK_ERRORS) as raised:
        while data := streamed.read(64 * 1024):
            got += data
    assert isinstance(raised.value, http.client.IncompleteRead) and got == BODY[: len(BODY) // 2]
    pool.close()


@pytest.mark.parametrize("rest", [None, -1])
def test_read_with_no_size_reads_the_rest_as_a_file_does(server: _Server, rest: int | None) -> None:
    pool = pool_for(server)
    streamed = pool.stream("GET", "/object", headers={})
    assert streamed.read(10) + streamed.read(rest) == BODY and streamed.read(rest) == b""
    pool.close()


def test_a_forked_child_opens_its_own_connections_never_the_parents(server: _Server) -> None:
    """A DataLoader worker forked from a process that had read: two processes on one kept-alive socket would
    read each other's answers (a HEAD of one key answering for another)."""
    pool = pool_for(server)
    assert pool.request("GET", "/object", body=None, headers={}).data == BODY
    parents = list(pool._idle)
    assert len(parents) == 1
    child = os.fork()
    if child == 0:  # the child: report by exit status only, never return into pytest
        ok = pool._idle == [] and pool.request("GET", "/object", body=None, headers={}).data == BODY
        os._exit(0 if ok and pool._idle and pool._idle[0] not in parents else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child used the parent's kept-alive connection"
    assert pool._idle == parents  # the parent's connection is still its own, and still open
    assert pool.request("GET", "/object", body=None, headers={}).data == BODY
    assert server.connections == 2  # the parent's one, kept, and the child's own
    pool.close()


class _Writes:
    """A connected socket whose writes are recorded: what each call carried, in order."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.writes: list[bytes] = []

    def sendall(self, data: Any) -> None:
        self.writes.append(bytes(data))
        self._sock.sendall(data)

    def send(self, data: Any) -> int:
        self.writes.append(bytes(data))
        return int(self._sock.send(data))

    def sendmsg(self, buffers: Any) -> int:
        joined = b"".join(bytes(b) for b in buffers)
        self.writes.append(joined)
        self._sock.sendall(joined)
        return len(joined)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def recorded(pool: ConnectionPool) -> _Writes:
    """The pool's one idle connection, its socket recording writes from now on."""
    [conn] = pool._idle
    writes = _Writes(conn.sock)
    conn.sock = writes  # a socket by delegation
    return writes


@pytest.mark.parametrize("body", [b"x", bytes(range(256)) * 4096, bytearray(b"part"), memoryview(b"view")])
def test_a_small_body_goes_out_in_one_write_with_its_headers(server: _Server, body: bytes | bytearray) -> None:
    pool = pool_for(server)
    pool.request("PUT", "/warm", body=b"w", headers={"Content-Length": "1"})
    writes = recorded(pool)
    answer = pool.request("PUT", "/k", body=body, headers={"Content-Length": str(len(body))})
    assert answer.data == bytes(body), "the server read the whole body, after the headers"
    assert len(writes.writes) == 1 and writes.writes[0].startswith(b"PUT /k HTTP/1.1\r\n")
    assert writes.writes[0].endswith(b"\r\n\r\n" + bytes(body))
    # The connection is left as it was: the next request (no body) writes its headers at once.
    again = pool.request("PUT", "/empty", body=None, headers={"Content-Length": "0"})
    assert again.data == b"" and len(writes.writes) == 2


def test_a_body_over_the_joined_size_is_still_sent_whole(server: _Server) -> None:
    pool = pool_for(server)
    body = os.urandom(JOINED_BODY + 1)
    assert pool.request("PUT", "/big", body=body, headers={"Content-Length": str(len(body))}).data == body


class _Partial:
    """A socket that takes at most the next of `sizes` bytes per sendmsg, as a full send buffer does."""

    def __init__(self, sizes: list[int]) -> None:
        self._sizes = sizes
        self.got = bytearray()

    def sendmsg(self, buffers: list[memoryview]) -> int:
        joined = b"".join(bytes(b) for b in buffers)
        taken = joined[: max(1, self._sizes.pop(0)) if self._sizes else len(joined)]
        self.got += taken
        return len(taken)


@given(head=st.binary(min_size=1, max_size=64), body=st.binary(min_size=1, max_size=256),
       sizes=st.lists(st.integers(min_value=0, max_value=80), max_size=20))
def test_partial_sends_still_write_headers_then_body_exactly_once(head: bytes, body: bytes, sizes: list[int]) -> None:
    sock = _Partial(sizes)
    _write_both(sock, head, memoryview(body))  # type: ignore[arg-type]  # a socket's sendmsg is all it uses
    assert bytes(sock.got) == head + body
