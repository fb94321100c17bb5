"""structlog set-up: a console renderer for people, JSON lines for CI; secrets never rendered."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from reconciler.choices import LogFormat

_SECRET_KEYS = re.compile(r"secret|token|password|credential|authorization|signature|access_key", re.I)
# A credential-like name, the separator text, JSON, a header line, a query string or the repr of a
# header dict puts after it (`name=v`, `name = v`, `"name": "v"`, `'Name': b'v'`), then its value:
# up to the closing quote when quoted, else up to a space, quote or delimiter.
_SECRET_NAME = (
    r"aws[_-]secret[_-]access[_-]key|secret[_-]?access[_-]?key|aws[_-]session[_-]token|session[_-]?token"
    r"|aws[_-]security[_-]token|x-amz-security-token|security[_-]?token|x-amz-signature|x-amz-credential|signature"
)
_SEPARATOR = r"""(?P<sep>["']?\s*[=:]\s*(?:b?["'])?)"""
_SECRET_VALUES = re.compile(
    rf"""(?P<name>{_SECRET_NAME})(?![\w-]){_SEPARATOR}(?P<value>(?<=["'])[^"'\r\n]*|[^\s"'&,;}}\])]+)""",
    re.I,
)
# An Authorization header's value has spaces (`AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`):
# all of it goes, up to the closing quote or the end of the line.
_AUTHORIZATION = re.compile(rf"""(?P<name>authorization)(?![\w-]){_SEPARATOR}(?P<value>[^"'\r\n]+)""", re.I)
_PLAIN = (str, int, float, bool, type(None))


# Every name the two patterns above can match contains one of these words: text without any of them has
# nothing to mask, and one search is far cheaper than the two substitutions (apply logs an event per action).
_TRIGGER = re.compile(r"secret|token|signature|credential|authorization", re.I)


def mask(text: str) -> str:
    """`text` with every credential-looking value replaced by [redacted]."""
    if not _TRIGGER.search(text):
        return text
    text = _AUTHORIZATION.sub(r"\g<name>\g<sep>[redacted]", text)
    return _SECRET_VALUES.sub(r"\g<name>\g<sep>[redacted]", text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, Mapping):
        return {k: "[redacted]" if _SECRET_KEYS.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    # Anything else (an exception, a request object) is rendered with str() or repr(): mask that text.
    text = str(value)
    masked = mask(text)
    return value if masked == text else masked


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop fields named like credentials and mask credential-looking text in the rest, nested ones too."""
    for key in list(event):
        if _SECRET_KEYS.search(key):
            event[key] = "[redacted]"
        else:
            event[key] = _scrub(event[key])
    return event


_FORMAT = {"name": "console"}


def json_logs() -> bool:
    """True under --log-format json: CI wants an event per action start, people only the results."""
    return _FORMAT["name"] == "json"


# Writes a finished log line; a live progress bar replaces it (progress.Bar) so that a line is written on a
# line of its own, never over the bar or after it, and the bar is drawn again below it.
LineWriter = Callable[[TextIO, str], None]
_LINE_WRITER: list[LineWriter | None] = [None]
_WRITE_LOCK = threading.Lock()


def set_line_writer(writer: LineWriter | None) -> None:
    _LINE_WRITER[0] = writer


class _LineLogger:
    """structlog's PrintLogger, with each line going through the progress bar's writer while one is drawn."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def msg(self, message: str) -> None:
        writer = _LINE_WRITER[0]
        if writer is not None:
            writer(self._file, message)
            return
        with _WRITE_LOCK:
            self._file.write(message + "\n")
            self._file.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


def console_colors(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal and never when NO_COLOR is set (https://no-color.org), as for plans."""
    env = os.environ if environ is None else environ
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in env


def configure_logging(fmt: LogFormat = LogFormat.CONSOLE, verbose: bool = False, quiet: bool = False) -> None:
    _FORMAT["name"] = fmt
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=console_colors(sys.stderr))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_factory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def _factory(file: TextIO) -> Callable[..., _LineLogger]:
    def make(*args: Any) -> _LineLogger:
        return _LineLogger(file)

    return make


def get_logger(name: str = "pixel") -> Any:
    return structlog.get_logger(name)
