"""The service part of `make demo`: start `pixel serve` for a moment and fetch one actor's document over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

PIXEL = str(Path(sys.executable).with_name("pixel"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(document: dict[str, Any]) -> str:
    """The document as JSON, one training image per line, so a terminal shows all of it at a glance."""
    images = ",\n".join(f"    {json.dumps(image)}" for image in document["training_images"])
    head = {k: v for k, v in document.items() if k != "training_images"}
    lines = [f'  "{k}": {json.dumps(v)},' for k, v in head.items() if k in ("actor_id", "actor_name")]
    lines.append(f'  "training_images": [\n{images}\n  ],')
    rest = [f'  "{k}": {json.dumps(v)}' for k, v in head.items() if k not in ("actor_id", "actor_name")]
    return "{\n" + "\n".join(lines) + "\n" + ",\n".join(rest) + "\n}"


def _get(url: str, headers: Mapping[str, str] | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=dict(headers or {}), method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:  # 304 and 4xx arrive as errors: their status is the answer
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def _wait_for(url: str, server: subprocess.Popen[str]) -> tuple[int, dict[str, str], bytes]:
    deadline = time.monotonic() + 60
    while True:
        try:
            return _get(url)
        except urllib.error.URLError as exc:
            if server.poll() is not None or time.monotonic() > deadline:
                stderr = server.stderr.read() if server.stderr else ""
                raise RuntimeError(f"pixel serve did not answer: {stderr}") from exc
            time.sleep(0.2)


def run_service_demo(
    specs: Path, env: Mapping[str, str], say: Callable[[str], None] = print, actor_id: str = "42"
) -> None:
    port = _free_port()
    say(f"\n$ pixel serve --specs {specs} --port {port}    (loopback; mutations off without PIXEL_API_TOKEN)")
    child_env = {k: v for k, v in {**os.environ, **env}.items() if k != "PIXEL_API_TOKEN"}
    server = subprocess.Popen(
        [PIXEL, "serve", "--specs", str(specs), "--port", str(port), "-q"],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/actors/{actor_id}/training-data"
        status, headers, body = _wait_for(url, server)
        if status != 200:
            raise RuntimeError(f"GET {url} answered {status}: {body.decode()}")
        say(f"$ curl {url}\n{render(json.loads(body))}")
        again, _, _ = _get(url, {"If-None-Match": headers["etag"]})
        say(f"ETag {headers['etag']}; asked again with If-None-Match: {again}")
        denied, _, error = _get(url.replace("training-data", "training-images"), method="POST")
        say(f"POST without PIXEL_API_TOKEN: {denied} {json.loads(error)['error']}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    say("pixel serve stopped.")
