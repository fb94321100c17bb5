"""`pixel serve`'s own socket: no request waits on Nagle's algorithm.

uvicorn sends a response's head and body in two writes; on a connection without
TCP_NODELAY the body waited for the client's delayed ACK of the head (40 ms a
request on loopback). Asserted on the connection uvicorn really accepted, not timed.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from reconciler.commands.serve import listening_socket

BODY = b"x" * 4700  # the size of the actor document that showed the stall


async def _app(scope: dict[str, object], receive: object, send: object) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4700")]})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": BODY})  # type: ignore[operator]


async def _nodelay_of_accepted_connections() -> list[int]:
    sock = listening_socket("127.0.0.1", 0)
    sock.listen()  # connectable now, so the client needs no wait for uvicorn's start-up
    server = uvicorn.Server(uvicorn.Config(_app, lifespan="off", log_level="warning", access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        assert await reader.readexactly(len(BODY)) == BODY
        found = [
            connection.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            for connection in server.server_state.connections
        ]
        writer.close()
        return found
    finally:
        server.should_exit = True
        await serving
        sock.close()


def test_serve_accepts_connections_with_tcp_nodelay() -> None:
    found = asyncio.run(_nodelay_of_accepted_connections())
    assert found and all(found), f"TCP_NODELAY on the accepted connections: {found}"


def test_listening_socket_is_tcp_for_asyncio() -> None:
    """asyncio sets TCP_NODELAY itself only on sockets whose protocol says TCP; 0 (the default) is not."""
    sock = listening_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
