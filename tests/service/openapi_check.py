"""Every answer a service test receives, held to /openapi.json as a generated client would read it.

An httpx response hook: the operation is found by method and path template, then the status must be one the
operation declares, every pixel header sent must be declared for that status (and every required one sent), and
the body must be what the status declares (none for 304, else JSON valid against its schema, components resolved).
A mismatch fails the test that made the request, so drift between the service and its OpenAPI fails CI.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from jsonschema import Draft202012Validator

# The headers whose meaning a client must learn from the schema; transport headers (date, server) are not.
PIXEL_HEADERS = frozenset(
    {"etag", "cache-control", "x-pixel-observed", "x-pixel-upload", "retry-after", "www-authenticate"}
)


class OpenAPIConformance:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.routes = [
            (re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "$"), operations)
            for template, operations in spec["paths"].items()
        ]

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        for pattern, operations in self.routes:
            if pattern.match(path):
                found: dict[str, Any] | None = operations.get(method.lower())
                return found
        return None

    def check(self, response: httpx.Response) -> None:
        """Raise AssertionError naming what `response` has that /openapi.json does not declare."""
        request = response.request
        path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")  # raw: %2F stays inside one segment
        operation = self.operation(request.method, path)
        if operation is None:
            return  # the page, /docs, /openapi.json and unknown routes: no operation to hold them to
        where = f"{request.method} {path} -> {response.status_code}"
        declared = operation["responses"].get(str(response.status_code))
        listed = sorted(operation["responses"])
        assert declared is not None, f"{where}: status not in /openapi.json (declared: {listed})"
        headers = {name.lower(): spec for name, spec in declared.get("headers", {}).items()}
        undeclared = {h for h in response.headers if h.lower() in PIXEL_HEADERS} - set(headers)
        assert not undeclared, f"{where}: headers {sorted(undeclared)} not declared for this status"
        missing = {h for h, spec in headers.items() if spec.get("required") and h not in response.headers}
        assert not missing, f"{where}: required headers {sorted(missing)} not sent"
        content = declared.get("content")
        if not content:
            assert response.content == b"", f"{where}: a body where /openapi.json declares none"
            return
        media = response.headers.get("content-type", "").split(";")[0]
        assert media in content, f"{where}: content-type {media!r}, declared {sorted(content)}"
        schema = {**content[media].get("schema", {}), "components": self.spec.get("components", {})}
        problems = sorted(Draft202012Validator(schema).iter_errors(json.loads(response.content)), key=str)
        first = problems[0] if problems else None
        assert first is None, f"{where}: body does not match its schema: {first.message} at {first.json_path}"

    def hook(self, response: httpx.Response) -> None:
        response.read()
        self.check(response)


def checked_client(spec: dict[str, Any], base_url: str, timeout: float = 120) -> httpx.Client:
    """An httpx client whose every answer is checked against `spec` (the app's /openapi.json)."""
    return httpx.Client(base_url=base_url, timeout=timeout, event_hooks={"response": [OpenAPIConformance(spec).hook]})
