"""A real uvicorn server for an ASGI app on a free loopback port, in a thread: for tests, the demo and the bench."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

import uvicorn


class LiveServer:
    """`with LiveServer(app) as server: httpx.get(server.url + "/api/actors")`; stopped (and joined) on exit."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", startup_timeout: float = 20.0) -> None:
        self.config = uvicorn.Config(app, host=host, port=0, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(self.config)
        self.host = host
        self.startup_timeout = startup_timeout
        self.thread = threading.Thread(target=self.server.run, name="pixel-live-server", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                raise RuntimeError(f"uvicorn did not start on {self.host} within {self.startup_timeout} s")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
