"""`pixel serve`: the training-data service on uvicorn (reconciler/service/)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import click

from reconciler.commands import EXIT_OK
from reconciler.commands.common import load
from reconciler.errors import UserError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def listening_socket(host: str, port: int) -> socket.socket:
    """The bound server socket, made here, not by uvicorn: a port in use is then one clear error and exit 1
    (uvicorn exits 3).

    Its protocol is named (IPPROTO_TCP), not left 0: asyncio sets TCP_NODELAY on an accepted connection only when
    the socket says it is TCP, and uvicorn writes a response's head and body in two sends. Without it, Nagle's
    algorithm held each body until the client's delayed ACK of the head: 40 ms per request on loopback.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Also on the listener: Linux hands it down to accepted sockets, whatever loop or protocol accepts them.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def serve(specs: Path, *, host: str, port: int, max_image_bytes: int, status_ttl: float) -> int:
    import uvicorn

    from reconciler.service.app import create_app
    from reconciler.service.deps import token_problem

    load(specs)  # bad specs: the usual located errors and exit 1, before a port is bound
    token = os.environ.get("PIXEL_API_TOKEN") or None
    if (problem := token_problem(token)) is not None:
        raise UserError(problem)
    if host not in LOOPBACK and token is None:
        click.echo(f"Warning: serving on {host}, beyond this machine; the API is read-only (no PIXEL_API_TOKEN).",
                   err=True)
    app = create_app(specs, token=token, max_image_bytes=max_image_bytes, status_ttl=status_ttl)
    sock = listening_socket(host, port)
    mutations = "on (PIXEL_API_TOKEN is set)" if token else "off (set PIXEL_API_TOKEN to enable them)"
    where = f"http://{host}:{sock.getsockname()[1]}/"
    click.echo(f"pixel serve: {where} (API docs at /docs); mutations {mutations}", err=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return EXIT_OK
