"""Logging: structlog's console renderer for people, JSON lines for CI; secrets never rendered.

Under `--log-format json` the events are rendered here, as structlog's JSONRenderer rendered them (sorted
keys, `level`, an ISO `timestamp` in UTC, `redact` first), so a run that logs only JSON lines (CI, the bench's
warm no-op) never imports structlog, nor the asyncio its stdlib module pulls in: 60 ms of a 0.3 s plan.
The console format without colours (stderr not a terminal, or NO_COLOR) is rendered here too, as
structlog's ConsoleRenderer(colors=False) rendered it: structlog's console renderer brings rich, pygments,
attrs and asyncio, ~150 modules, for lines a CI log shows as plain text. Colours, an event carrying an
exception or a stack, and every event logged before `configure_logging` (a library caller) stay structlog's.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO

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


# Every name the two patterns above can match contains one of these words (mask's ASCII test spells them out):
# text without any of them has nothing to mask, and one search is far cheaper than the two substitutions (apply
# logs an event per action).
_TRIGGER = re.compile(r"secret|token|signature|credential|authorization", re.I)


def mask(text: str) -> str:
    """`text` with every credential-looking value replaced by [redacted]."""
    if text.isascii():
        # The trigger's answer for ASCII text at a third of its cost: an apply masks several strings per event.
        # Other text goes through the pattern, whose case-insensitive match also folds letters lower() keeps
        # (the long s, the Kelvin sign).
        lowered = text.lower()
        if not (
            "secret" in lowered or "token" in lowered or "signature" in lowered or "credential" in lowered
            or "authorization" in lowered
        ):
            return text
    elif not _TRIGGER.search(text):
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


@functools.lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    """Whether a field's name says it holds a credential. An apply logs the same few names on every action's
    two events: asked once per name, not once per event."""
    return _SECRET_KEYS.search(key) is not None


# Values with no text of their own to mask (a bool is an int): passed through without a call.
_NUMBERS = frozenset({int, float, bool, type(None)})


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop fields named like credentials and mask credential-looking text in the rest, nested ones too."""
    for key, value in list(event.items()):
        if _secret_key(key):
            event[key] = "[redacted]"
        elif type(value) is str:
            event[key] = mask(value)
        elif type(value) not in _NUMBERS:
            event[key] = _scrub(value)
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


class _Held(threading.local):
    """The lines a thread holds back inside `lines_held`, with the files they go to; None outside it."""

    lines: list[tuple[TextIO, str]] | None = None


_HELD = _Held()


@contextlib.contextmanager
def lines_held() -> Iterator[None]:
    """The lines this thread logs meanwhile are written together at the end, one write and flush per file.

    The apply's main thread logs two lines per action (JSON logs); a write per line released the GIL to its
    sixteen workers and waited to take it back, each time. Its loop holds its lines over one pass (the actions
    just finished, those started after them: microseconds, never a wait), so a CI log gets them as promptly.
    Other threads' lines are not held; nested scopes write at the outermost one's end.
    """
    if _HELD.lines is not None:
        yield
        return
    _HELD.lines = []
    try:
        yield
    finally:
        held, _HELD.lines = _HELD.lines, None
        if held:
            # Joined per file, then one write each: stderr is line-buffered, so a write per line would still
            # be a system call per line.
            per_file: dict[int, tuple[TextIO, list[str]]] = {}
            for file, message in held:
                per_file.setdefault(id(file), (file, []))[1].append(message + "\n")
            with _WRITE_LOCK:
                for file, messages in per_file.values():
                    file.write("".join(messages))
                    file.flush()


class _LineLogger:
    """structlog's PrintLogger, with each line going through the progress bar's writer while one is drawn."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def msg(self, message: str) -> None:
        writer = _LINE_WRITER[0]
        if writer is not None:
            writer(self._file, message)
            return
        held = _HELD.lines
        if held is not None:
            held.append((self._file, message))
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


@dataclass(frozen=True, slots=True)
class _Rendered:
    """Where and from which level `configure_logging` asked the events pixel renders itself to go."""

    level: int
    file: TextIO
    console: bool = False  # plain console lines; else JSON lines


# The events pixel renders itself: None until configure_logging, and under the coloured console format
# (structlog renders then).
_JSON: list[_Rendered | None] = [None]
# The level structlog is to be configured with on the first event it must render (one with an exception, under
# plain console lines): configuring it imports it.
_STRUCTLOG_LATER: list[int | None] = [None]
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# Fields only structlog's console renderer knows how to show (a traceback, a stack).
_STRUCTLOG_FIELDS = frozenset({"exc_info", "exception", "stack", "stack_info"})


def configure_logging(fmt: LogFormat = LogFormat.CONSOLE, verbose: bool = False, quiet: bool = False) -> None:
    _FORMAT["name"] = fmt
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    _STRUCTLOG_LATER[0] = None
    if fmt == "json":
        _JSON[0] = _Rendered(level, sys.stderr)
        return
    if not console_colors(sys.stderr):
        _JSON[0] = _Rendered(level, sys.stderr, console=True)
        _STRUCTLOG_LATER[0] = level
        return
    _JSON[0] = None
    _configure_structlog(level, colors=True)


def _configure_structlog(level: int, *, colors: bool) -> None:
    import structlog

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.dev.ConsoleRenderer(colors=colors),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_factory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def _factory(file: TextIO) -> Callable[..., _LineLogger]:
    def make(*args: Any) -> _LineLogger:
        return _LineLogger(file)

    return make


def _fallback(value: Any) -> Any:
    """structlog's JSONRenderer's word for a value json cannot write: its __structlog__(), else its repr."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


def _interpolated(event: str, args: tuple[Any, ...]) -> str:
    """`log.info("%s files", n)`, as structlog's bound loggers format it."""
    if not args:
        return event
    if len(args) == 1 and isinstance(args[0], dict) and args[0]:
        return event % args[0]
    return event % args


class _Logger:
    """A named logger: JSON events rendered by `_json_line`, the rest handed to structlog as configured."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def _log(self, method: str, event: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        rendered = _JSON[0]
        if rendered is None or (rendered.console and not _STRUCTLOG_FIELDS.isdisjoint(fields)):
            import structlog

            later = _STRUCTLOG_LATER[0]
            if later is not None:
                _STRUCTLOG_LATER[0] = None
                _configure_structlog(later, colors=False)
            getattr(structlog.get_logger(self._name), method)(event, *args, **fields)
            return
        if _LEVELS[method] < rendered.level:
            return
        render = _console_line if rendered.console else _json_line
        _LineLogger(rendered.file).msg(render(method, _interpolated(event, args), fields))

    def debug(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("debug", event, args, fields)

    def info(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("info", event, args, fields)

    def warning(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("warning", event, args, fields)

    def error(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("error", event, args, fields)


# json.dumps(record, default=_fallback, sort_keys=True) builds this encoder anew for every line; one, shared
# (encode keeps no state between calls), renders the same text.
_ENCODER = json.JSONEncoder(default=_fallback, sort_keys=True)


def _json_line(level: str, event: str, fields: dict[str, Any]) -> str:
    """The processors configure_logging gave structlog for JSON, in their order: the level, the timestamp,
    `redact`, then the renderer (sorted keys, json's own escaping)."""
    record: dict[str, Any] = {**fields, "event": event}
    redact(None, level, record)
    # Set after `redact`, which could change neither (a level's name, digits of the clock): the same text.
    record["level"] = level
    record["timestamp"] = _now()
    return _ENCODER.encode(record)


# structlog's ConsoleRenderer: the level padded to its longest name ("exception"), the event to 30 characters.
_LEVEL_WIDTH = 9
_EVENT_WIDTH = 30
_QUOTED = frozenset(" \t=\r\n\"'")


def _console_line(level: str, event: str, fields: dict[str, Any]) -> str:
    """The line structlog's ConsoleRenderer(colors=False) made of this event under configure_logging's
    processors: the timestamp, `[level]`, the event padded, `[logger]` columns, then key=value sorted by key."""
    record = redact(None, level, {**fields, "event": event, "level": level, "timestamp": _now()})
    columns = [str(record.pop("timestamp")), f"[{record.pop('level'):<{_LEVEL_WIDTH}}]"]
    columns.append(f"{record.pop('event')!s:<{_EVENT_WIDTH}}")
    columns += [f"[{record.pop(key)!s}]" for key in ("logger", "logger_name") if key in record]
    columns += [f"{key}={_console_value(record[key])}" for key in sorted(record)]
    return " ".join(column for column in columns if column).rstrip(" ")


def _console_value(value: Any) -> str:
    if isinstance(value, str) and _QUOTED.isdisjoint(value):
        return value
    return repr(value)


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).isoformat().replace("+00:00", "Z")


def get_logger(name: str = "pixel") -> Any:
    return _Logger(name)
