"""The direct path's streamed bodies: a connection is reused only once its body was read whole."""

from __future__ import annotations

import http.client
import http.server
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
