"""structlog set-up: a console renderer for people, JSON lines for CI; secrets never rendered."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"secret|token|password|credential|authorization|signature|access_key", re.I)
_SECRET_VALUES = re.compile(
    r"(aws_secret_access_key|aws_session_token|x-amz-security-token|signature|authorization)([=:]\s*)\S+",
    re.I,
)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop fields named like credentials and mask credential-looking text in the rest."""
    for key in list(event):
        if _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
        elif isinstance(event[key], str):
            event[key] = _SECRET_VALUES.sub(r"\1\2[redacted]", event[key])
    return event


_FORMAT = {"name": "console"}


def json_logs() -> bool:
    """True under --log-format json: CI wants an event per action start, people only the results."""
    return _FORMAT["name"] == "json"


def configure_logging(fmt: str = "console", verbose: bool = False, quiet: bool = False) -> None:
    _FORMAT["name"] = fmt
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "pixel") -> Any:
    return structlog.get_logger(name)
