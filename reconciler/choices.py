"""The closed sets of words a command line flag chooses from, as enums the type checker can hold callers to.

StrEnums: each member is its own value as a string (`OutputFormat.JSON == "json"`), so JSON documents, log
lines and environment variables read the same as before, and the click choices are built from the members.
"""

from __future__ import annotations

from enum import StrEnum


class OutputFormat(StrEnum):
    """--format: each command renders a subset (cli.py lists which)."""

    TEXT = "text"
    MARKDOWN = "markdown"
    JSON = "json"
    DOT = "dot"
    MERMAID = "mermaid"


class ObserveMode(StrEnum):
    """--observe: list the buckets, or read each store's newest S3 Inventory report."""

    LIST = "list"
    INVENTORY = "inventory"


class Scale(StrEnum):
    """--scale: plan in memory, or stream the observation and the plan through spill files (docs/scale.md)."""

    MEMORY = "memory"
    STREAM = "stream"


class Executor(StrEnum):
    """--executor: this machine's thread pool, or batches of actions on a Dask cluster."""

    LOCAL = "local"
    DASK = "dask"


class LogFormat(StrEnum):
    """--log-format: structlog's console lines, or one JSON object per line."""

    CONSOLE = "console"
    JSON = "json"
