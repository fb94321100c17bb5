"""The direct transport's response headers, read without the email package: the same answers as http.client's
own parse, and the same framing of the body that follows (sized, chunked, none for HEAD, closing)."""

from __future__ import annotations

import http.client
import http.server
import io
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.stores.s3.direct.http_pool import ConnectionPool, read_headers

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", min_size=1, max_size=12)
# Latin-1 printable, no CR/LF: what a server may put in a field value (its leading spaces are not the value's).
_VALUE = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=30
)


def _block(fields: list[tuple[str, str]]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode("iso-8859-1") for name, value in fields) + b"\r\nBODY"


@given(st.lists(st.tuples(_TOKEN, _VALUE), max_size=12), st.data())
def test_the_headers_answer_as_http_clients_parse_does(fields: list[tuple[str, str]], data: st.DataObject) -> None:
    ours_fp, theirs_fp = io.BytesIO(_block(fields)), io.BytesIO(_block(fields))
    ours, theirs = read_headers(ours_fp), http.client.parse_headers(theirs_fp)
    assert ours.items() == theirs.items()
    for name, _ in fields:
        asked = data.draw(st.sampled_from([name, name.lower(), name.upper()]))
        assert ours.get(asked) == theirs.get(asked)
        assert ours.get_all(asked) == theirs.get_all(asked)
        assert asked in ours
    assert ours.get("x-not-sent") is None and "x-not-sent" not in ours
    assert ours_fp.read() == theirs_fp.read() == b"BODY"  # the body starts where http.client would read it


def test_a_folded_line_joins_the_field_before_it() -> None:
    headers = read_headers(io.BytesIO(b"X-Long: first\r\n  second\r\nEtag: \"e\"\r\n\r\n"))
    assert headers["x-long"] == "first second"
    assert headers["ETAG"] == '"e"'
    assert list(headers) == ["X-Long", "Etag"]


def test_too_many_header_lines_are_refused_as_http_client_refuses_them() -> None:
    block = b"".join(b"X-%d: v\r\n" % n for n in range(101)) + b"\r\n"
    with pytest.raises(http.client.HTTPException):
        read_headers(io.BytesIO(block))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # http.server calls it by this name
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"bye")
            self.close_connection = True
        else:
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.send_header("ETag", '"abc"')
            self.end_headers()
            self.wfile.write(b"body")

    def do_HEAD(self) -> None:  # http.server calls it by this name
        self.send_response(200)
        self.send_header("Content-Length", "1000")  # the size of what a GET would send; a HEAD sends none
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    pool = ConnectionPool("http", f"127.0.0.1:{server.server_address[1]}", size=2)
    try:
        yield pool
    finally:
        pool.close()
        server.shutdown()
        server.server_close()


def test_each_framing_is_read_whole_and_the_connection_kept_only_when_it_may_be(pool: ConnectionPool) -> None:
    head = pool.request("HEAD", "/", body=None, headers={})
    assert (head.status, head.data, head.headers.get("content-length")) == (200, b"", "1000")
    assert len(pool._idle) == 1  # a HEAD's announced length is no body to wait for: the connection is reused
    sized = pool.request("GET", "/", body=None, headers={})
    assert (sized.data, sized.headers["etag"]) == (b"body", '"abc"')
    assert pool.request("GET", "/chunked", body=None, headers={}).data == b"hello world"
    assert len(pool._idle) == 1  # the same connection carried all three
    assert pool.request("GET", "/close", body=None, headers={}).data == b"bye"
    assert pool._idle == []  # the server said it closes: never given back
