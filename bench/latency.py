"""A loopback TCP relay that holds every byte `delay` seconds in each direction: an S3 endpoint far away.

Unlike a proxy that sleeps per request, it delays each direction's stream as a
network would: bytes keep flowing (throughput is not capped), each arrives
`delay` later, so a request/response round trip costs 2 x `delay` more and
concurrent requests overlap their waits. Bounded: it serves only loopback and
stops with the `with` block.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from types import TracebackType


class LatencyRelay:
    def __init__(self, upstream_port: int, *, delay: float = 0.025, host: str = "127.0.0.1") -> None:
        self.delay = delay
        self._upstream = (host, upstream_port)
        self._listener = socket.create_server((host, 0))
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://{host}:{self.port}"
        self._closing = threading.Event()
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> LatencyRelay:
        self._accepter.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipe(client, upstream)
            self._pipe(upstream, client)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        held: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def read() -> None:
            while True:
                try:
                    data = src.recv(256 * 1024)
                except OSError:
                    data = b""
                held.put((time.monotonic() + self.delay, data))
                if not data:
                    return

        def write() -> None:
            while True:
                due, data = held.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    if not data:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    dst.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()
