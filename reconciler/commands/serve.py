"""`pixel serve`: the training-data service on uvicorn (reconciler/service/)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from reconciler.commands import EXIT_OK
from reconciler.commands.common import load
from reconciler.errors import UserError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def serve(specs: Path, *, host: str, port: int, max_image_bytes: int, status_ttl: float) -> int:
    import uvicorn

    from reconciler.service.app import create_app

    load(specs)  # bad specs: the usual located errors and exit 1, before a port is bound
    token = os.environ.get("PIXEL_API_TOKEN") or None
    if host not in LOOPBACK and token is None:
        click.echo(f"Warning: serving on {host}, beyond this machine; the API is read-only (no PIXEL_API_TOKEN).",
                   err=True)
    mutations = "on (PIXEL_API_TOKEN is set)" if token else "off (set PIXEL_API_TOKEN to enable them)"
    click.echo(f"pixel serve: http://{host}:{port}/ (API docs at /docs); mutations {mutations}", err=True)
    app = create_app(specs, token=token, max_image_bytes=max_image_bytes, status_ttl=status_ttl)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except OSError as exc:
        raise UserError(f"cannot serve on {host}:{port}: {exc}") from exc
    return EXIT_OK
