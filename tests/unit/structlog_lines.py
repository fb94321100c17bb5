"""What structlog itself renders for an event, under the processors configure_logging gave it: the lines pixel
now renders on its own are held to these byte for byte."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import structlog

from reconciler import logs


def structlog_line(renderer: Any, level: str, event: str, fields: dict[str, Any]) -> str:
    """`renderer` at the end of the pipeline (JSONRenderer(sort_keys=True), ConsoleRenderer(colors=False))."""
    out = io.StringIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            logs.redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(10),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    getattr(structlog.get_logger("pixel"), level)(event, **fields)
    return out.getvalue().rstrip("\n")


def logged_in_a_fresh_process(fmt: str, fields: str) -> str:
    """stderr of a process that configures `fmt` logging and logs one event (`fields`: its keyword arguments as
    Python source), having checked that neither structlog nor what it brings (asyncio, rich) was imported."""
    script = (
        "import sys\n"
        "from reconciler.logs import configure_logging, get_logger\n"
        f"configure_logging({fmt!r}, verbose=True)\n"
        f"get_logger('pixel.observe').info('local files hashed', {fields})\n"
        "loaded = sorted({'structlog', 'asyncio', 'rich'} & set(sys.modules))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr
