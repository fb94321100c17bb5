"""The small-upload lane's sender (stores/s3/direct/bulk.py): one thread, many requests over N connections.

Against a tiny HTTP server this test controls (a thread per connection), so each way a server can behave is
made to happen on purpose: answers sized or chunked, a kept-alive connection it closes while idle, an answer
that says `Connection: close`, a request it never answers, a port nobody listens on. Deadlines run on a clock
the test moves: nothing here waits for time to pass.
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler.stores.s3.direct.bulk import BulkSender, Endpoint, Wire
from reconciler.stores.s3.direct.http_pool import DeadlineExceeded, Response
from reconciler.stores.s3.direct.raw import DirectTransport

BOUND = 30.0  # seconds a broken run waits for a condition before failing; a passing run never does


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Server:
    """Answers each request by `answer(head, body, nth)` (None: never answer); counts the connections it took."""

    def __init__(self, answer: Callable[[bytes, bytes, int], bytes | None]) -> None:
        self.answer = answer
        self.accepted = 0
        self.requests = 0
        self.closed_idle = threading.Event()
        self.received = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._held.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                sizes = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
                length = int(sizes[0].split(b":")[1]) if sizes else 0
                body = reader.read(length)
                with self.received:
                    self.requests += 1
                    nth = self.requests
                    self.received.notify_all()
                reply = self.answer(head, body, nth)
                if reply is None:
                    return  # held open, never answered: closed by `close`
                conn.sendall(reply)
                if b"connection: close" in reply.lower() or b"x-then-close" in head.lower():
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                    self.closed_idle.set()
                    return
        except OSError:
            return

    def wait_requests(self, n: int) -> None:
        with self.received:
            assert self.received.wait_for(lambda: self.requests >= n, BOUND), f"{self.requests} requests, wanted {n}"

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for conn in self._held:
                conn.close()


def echo(head: bytes, body: bytes, nth: int) -> bytes:
    """The request's body back: chunked when the request asks, sized otherwise."""
    if b"x-mode: chunked" in head.lower():
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
        framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed
    return b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def wire(body: bytes, *extra: str) -> Wire:
    head = "".join(f"{h}\r\n" for h in ("PUT /k HTTP/1.1", "Host: test", f"Content-Length: {len(body)}", *extra))
    return Wire((head + "\r\n").encode(), body)


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[bytes, bytes, int], bytes | None]], Server]]:
    made: list[Server] = []

    def start(answer: Callable[[bytes, bytes, int], bytes | None]) -> Server:
        made.append(Server(answer))
        return made[-1]

    yield start
    for server in made:
        server.close()


@pytest.fixture
def sender() -> Iterator[BulkSender[Any]]:
    made: BulkSender[Any] = BulkSender(Clock())
    yield made
    made.close()


def endpoint(sender: BulkSender[Any], port: int, connections: int = 1) -> Endpoint[Any]:
    return sender.endpoint("127.0.0.1", port, connections=connections, connect_timeout=5, read_timeout=5)


def until(sender: BulkSender[Any], want: int) -> list[tuple[Any, Response | Exception]]:
    """`want` results from `sender`, each wait bounded (the clock the test holds never moves on its own)."""
    got: list[tuple[Any, Response | Exception]] = []
    for _ in range(10_000):
        if len(got) >= want:
            return got
        got += sender.wait(timeout=BOUND)
    raise AssertionError(f"{len(got)} results, wanted {want}")


def test_many_requests_over_n_connections_each_answered_under_its_own_token(
    serve: Callable[..., Server], sender: BulkSender[Any]
) -> None:
    server = serve(echo)
    out = endpoint(sender, server.port, connections=3)
    rng = random.Random(7)
    bodies = {n: rng.randbytes(rng.choice([0, 1, 100, 5000, 300_000])) for n in range(60)}
    answers: dict[int, Response | Exception] = {}
    queue = list(bodies)
    while queue or len(answers) < len(bodies):
        while queue and out.free():
            n = queue.pop()
            out.send(n, wire(bodies[n], *(["X-Mode: chunked"] if n % 2 else [])))
        for token, answer in sender.wait(timeout=BOUND):
            assert token not in answers
            answers[token] = answer
    for n, body in bodies.items():
        answer = answers[n]
        assert isinstance(answer, Response), (n, answer)
        assert (answer.status, answer.data) == (200, body), n
    assert server.accepted == 3  # every connection kept alive and reused
    assert sender.in_flight() == 0


def test_an_idle_connection_the_server_closed_is_not_reused(
    serve: Callable[..., Server], sender: BulkSender[Any]
) -> None:
    server = serve(echo)
    out = endpoint(sender, server.port)
    out.send("first", wire(b"one", "X-Then-Close: yes"))  # answered without a word, then closed
    ((token, answer),) = until(sender, 1)
    assert token == "first" and isinstance(answer, Response) and answer.data == b"one"
    assert server.closed_idle.wait(BOUND)
    assert sender.wait(timeout=BOUND) == []  # the close, seen on the idle connection
    out.send("second", wire(b"two"))
    ((token, answer),) = until(sender, 1)
    assert token == "second" and isinstance(answer, Response) and answer.data == b"two"
    assert server.accepted == 2


def test_an_answer_that_says_connection_close_closes_the_connection(
    serve: Callable[..., Server], sender: BulkSender[Any]
) -> None:
    def closing(head: bytes, body: bytes, nth: int) -> bytes:
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    server = serve(closing)
    out = endpoint(sender, server.port)
    for n in range(3):
        out.send(n, wire(b"x%d" % n))
        ((token, answer),) = until(sender, 1)
        assert token == n and isinstance(answer, Response) and answer.data == b"x%d" % n
    assert server.accepted == 3


def test_an_answer_read_to_the_close(serve: Callable[..., Server], sender: BulkSender[Any]) -> None:
    def unsized(head: bytes, body: bytes, nth: int) -> bytes:
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body

    server = serve(unsized)
    out = endpoint(sender, server.port)
    out.send("t", wire(b"all of it"))
    ((_, answer),) = until(sender, 1)
    assert isinstance(answer, Response) and answer.data == b"all of it"


def test_a_server_that_never_answers_is_late_by_the_read_deadline_on_the_injected_clock(
    serve: Callable[..., Server]
) -> None:
    clock = Clock()
    sender: BulkSender[str] = BulkSender(clock)
    try:
        server = serve(lambda head, body, nth: None)
        out = sender.endpoint("127.0.0.1", server.port, connections=1, connect_timeout=5, read_timeout=5)
        out.send("t", wire(b"never answered"))
        for _ in range(100_000):  # until connected and sent; each wait is a short poll, not a wait for time
            if server.requests:
                break
            assert sender.wait(timeout=0.01) == []
        server.wait_requests(1)
        clock.now += 4.9
        assert sender.wait(timeout=0) == []  # not yet
        clock.now += 0.2
        ((token, answer),) = sender.wait(timeout=0)
        assert token == "t" and isinstance(answer, DeadlineExceeded)
        assert "read deadline of 5 s" in str(answer)
        assert sender.in_flight() == 0 and out.free() == 1
    finally:
        sender.close()


def test_a_refused_connection_is_an_oserror_result(sender: BulkSender[Any]) -> None:
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    port = spare.getsockname()[1]  # bound, never listening: a connect is refused
    try:
        out = endpoint(sender, port)
        out.send("t", wire(b"x"))
        ((token, answer),) = until(sender, 1)
        assert token == "t" and isinstance(answer, OSError) and not isinstance(answer, DeadlineExceeded)
        assert out.free() == 1
    finally:
        spare.close()


def test_a_reset_before_the_answer_is_a_dropped_connection(
    serve: Callable[..., Server], sender: BulkSender[Any]
) -> None:
    server = serve(lambda head, body, nth: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    out = endpoint(sender, server.port)
    out.send("t", wire(b"x", "X-Then-Close: yes"))
    ((_, answer),) = until(sender, 1)
    assert isinstance(answer, ConnectionResetError)


def test_wake_from_another_thread_returns_a_blocked_wait(sender: BulkSender[Any]) -> None:
    returned: list[list[Any]] = []
    waiter = threading.Thread(target=lambda: returned.append(sender.wait()), daemon=True)
    waiter.start()
    sender.wake()
    waiter.join(BOUND)
    assert not waiter.is_alive() and returned == [[]]


@pytest.mark.parametrize("base", ["https://s3.example.com/", "https://127.0.0.1:9000/"])
def test_a_tls_endpoint_is_never_given_to_the_lane(base: str, sender: BulkSender[Any]) -> None:
    transport = DirectTransport(
        base, "us-east-1", lambda: None, bucket="b", pool_size=1, connect_timeout=1, read_timeout=1
    )
    try:
        assert transport.bulk_endpoint(sender, 4) is None
        assert sender.endpoints == []
    finally:
        transport.close()


def test_a_plain_http_endpoint_is_given_to_the_lane_with_its_deadlines(sender: BulkSender[Any]) -> None:
    transport = DirectTransport(
        "http://127.0.0.1:9/", "us-east-1", lambda: None, bucket="b", pool_size=1, connect_timeout=1,
        read_timeout=1,
    )
    try:
        made = transport.bulk_endpoint(sender, 4)
        assert made is not None and made.url == "http://127.0.0.1:9" and made.free() == 4
    finally:
        transport.close()


def test_a_refused_address_of_a_name_is_passed_over_for_its_next_one(
    serve: Callable[..., Server], sender: BulkSender[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name with two addresses, the server on the second only (`localhost` as ::1 then 127.0.0.1, the server
    # listening on IPv4): as http.client's create_connection, the lane tries the next address on a refusal.
    server = serve(echo)
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))  # bound, never listening: refused
    refused = spare.getsockname()[1]
    looked_up: list[str] = []

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        looked_up.append(host)
        stream = (socket.AF_INET, socket.SOCK_STREAM, 6, "")
        return [(*stream, ("127.0.0.1", refused)), (*stream, ("127.0.0.1", server.port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        out = sender.endpoint("two-addresses.test", server.port, connections=2, connect_timeout=5, read_timeout=5)
        out.send("a", wire(b"first"))
        out.send("b", wire(b"second"))
        answers = dict(until(sender, 2))
        assert {token: getattr(answer, "data", answer) for token, answer in answers.items()} == {
            "a": b"first", "b": b"second",
        }
        assert looked_up == ["two-addresses.test"]  # once for the endpoint, not once per connection
    finally:
        spare.close()
