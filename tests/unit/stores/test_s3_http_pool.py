"""The direct transport's connections: reused only once a body was read whole, and never across a fork."""

from __future__ import annotations

import http.client
import http.server
import os
import threading
from collections.abc import Iterator

import pytest

from reconciler.stores.s3.direct.http_pool import NETWORK_ERRORS, ConnectionPool

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

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
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
