"""A small loopback HTTP proxy that sits between pixel and SeaweedFS and misbehaves on purpose.

Each request is matched against a list of `Fault` rules; the first matching
rule with budget left fires: answer 503 SlowDown (or any status and S3 error
code), reset the connection (RST, no answer), stall (hold the request,
then drop it), or lose the answer (carry the request out, then reset).
Every rule has a bounded budget (`times`) and the whole proxy stops injecting
after `deadline` seconds, so a test can never hang on it.
Requests that no rule claims are forwarded unchanged, Host header included
(SigV4 signs it).
"""

from __future__ import annotations

import http.client
import re
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te", "upgrade"}


@dataclass
class Fault:
    # "error" | "reset" | "stall" | "cut" (the answer forwarded, its body dropped halfway) | "lost" (the request
    # forwarded and carried out upstream, then the connection reset before a byte of its answer)
    kind: str
    method: str = ""  # "" matches any
    path: str = ""  # regex searched in the request path (with query), "" matches any
    times: int = 1  # how many requests this rule may hit; -1 for every matching request
    status: int = 503
    code: str = "SlowDown"
    stall_seconds: float = 1.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times != -1 and self.hits >= self.times:
            return False
        if self.method and self.method != method:
            return False
        return not self.path or re.search(self.path, path) is not None


@dataclass
class Log:
    lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, line: str) -> None:
        with self.lock:
            self.lines.append(line)


class FaultProxy:
    def __init__(self, upstream: str, faults: list[Fault], *, deadline: float = 120.0) -> None:
        match = re.match(r"https?://([^:/]+):(\d+)", upstream)
        assert match, upstream
        self.upstream = (match.group(1), int(match.group(2)))
        self.faults = faults
        self.deadline = time.monotonic() + deadline
        self.log = Log()
        self._rule_lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def injected(self, kind: str = "") -> int:
        return sum(f.hits for f in self.faults if not kind or f.kind == kind)

    def _pick(self, method: str, path: str) -> Fault | None:
        if time.monotonic() > self.deadline:
            return None
        with self._rule_lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        reader = conn.makefile("rb")
        try:
            while True:
                request_line = reader.readline()
                if not request_line:
                    return
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                headers: list[tuple[str, str]] = []
                while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers.append((name.strip(), value.strip()))
                lower = {k.lower(): v for k, v in headers}
                if lower.get("expect", "").lower() == "100-continue":
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = reader.read(int(lower.get("content-length", "0") or 0))
                fault = self._pick(method, path)
                asked = "".join(f" {h}={lower[h]}" for h in ("range", "if-match") if h in lower)
                self.log.add(f"{method} {path} -> {fault.kind if fault else 'forward'}{asked}")
                if fault is not None and fault.kind == "reset":
                    _reset(conn)
                    return
                if fault is not None and fault.kind == "stall":
                    time.sleep(fault.stall_seconds)
                    _reset(conn)
                    return
                if fault is not None and fault.kind == "lost":
                    self._forward(method, path, headers, body)
                    _reset(conn)
                    return
                if fault is not None and fault.kind == "cut":
                    head, _, payload = self._forward(method, path, headers, body).partition(b"\r\n\r\n")
                    conn.sendall(head + b"\r\n\r\n" + payload[: len(payload) // 2])
                    time.sleep(0.5)  # read before the RST arrives: a reset discards what the client has not read
                    _reset(conn)
                    return
                if fault is not None:
                    conn.sendall(_error_response(fault.status, fault.code, path, head_only=method == "HEAD"))
                    continue
                conn.sendall(self._forward(method, path, headers, body))
                if lower.get("connection", "").lower() == "close":
                    return
        except (OSError, ValueError):
            return
        finally:
            reader.close()
            conn.close()

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        upstream = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            payload = response.read()
            out = [f"HTTP/1.1 {response.status} {response.reason}\r\n".encode("latin-1")]
            for name, value in response.getheaders():
                if name.lower() in HOP_BY_HOP or (name.lower() == "content-length" and method != "HEAD"):
                    continue
                out.append(f"{name}: {value}\r\n".encode("latin-1"))
            if method != "HEAD":
                out.append(f"Content-Length: {len(payload)}\r\n".encode())
            out.append(b"\r\n")
            out.append(payload)
            return b"".join(out)
        finally:
            upstream.close()


def _error_response(status: int, code: str, path: str, *, head_only: bool = False) -> bytes:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>injected by the test proxy</Message><Resource>{escape(path)}</Resource></Error>"
    ).encode()
    reason = {403: "Forbidden", 500: "Internal Server Error", 503: "Slow Down"}.get(status, "Error")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head.replace(f"Content-Length: {len(body)}".encode(), b"Content-Length: 0") if head_only else head + body


def _reset(conn: socket.socket) -> None:
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN: a real "connection reset by peer".
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
