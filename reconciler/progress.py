"""Live progress bars on a terminal: listing, hashing and transfers (objects, bytes, rate, ETA).

Bars go to stderr and only when a person is watching: stderr is a TTY, CI is not
set, --quiet was not given and stdout is not carrying a JSON document. While a bar
is drawn, log lines are written above it (logs.set_line_writer), never over it.
Under --log-format json without a bar, the same counts go out as a `progress`
event every EVENT_S (EventBar), so a CI log shows a long apply moving. Anywhere
else every function here is a no-op, so piped output stays clean.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from reconciler import logs
from reconciler.choices import OutputFormat
from reconciler.model import Action, Plan
from reconciler.stores.base import StoreError
from reconciler.units import human_bytes

if TYPE_CHECKING:  # the executor (and networkx) is loaded only by apply, not by every plan
    from reconciler.apply.executor import Outcome, Reporter

# Redraw at most this often: a terminal repainting 10,000 times a second slows the apply it reports on.
REFRESH_S = 0.1
# A CI log gets a progress event at most this often: enough to see a long apply move, not a flood.
EVENT_S = 10.0
_WIDTH = 24

_settings = {"quiet": False}


def configure(*, quiet: bool) -> None:
    """Called once by the CLI with the global flags, like logging is configured."""
    _settings["quiet"] = quiet


def quiet() -> bool:
    """Whether --quiet was given: apply then shows no plan preview, only the summary and errors."""
    return _settings["quiet"]


def _ci(environ: Mapping[str, str]) -> bool:
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def enabled(
    stream: TextIO | None = None,
    *,
    output_format: OutputFormat = OutputFormat.TEXT,
    environ: Mapping[str, str] | None = None,
) -> bool:
    stream = sys.stderr if stream is None else stream
    env = os.environ if environ is None else environ
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not _ci(env) and not _settings["quiet"] and output_format != "json"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Bar:
    """One line redrawn in place: label, bar (when the total is known), objects, bytes, rate, ETA."""

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        total_bytes: int | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "objects",
    ) -> None:
        self.label = label
        self.unit = unit
        self.total = total
        self.total_bytes = total_bytes
        self.stream = sys.stderr if stream is None else stream
        self.clock = clock
        self.count = 0
        self.bytes = 0
        self.extra = ""
        # The extra text made when the bar is drawn, not at every advance (`observe_progress`: per file hashed).
        self.note: Callable[[], str] | None = None
        self.started = clock()
        self.refresh = REFRESH_S
        self._drawn: float | None = None
        self._lock = threading.Lock()

    def advance(self, count: int = 1, nbytes: int = 0, *, extra: str | None = None) -> None:
        with self._lock:
            self.count += count
            self.bytes += nbytes
            if extra is not None:
                self.extra = extra
            now = self.clock()
            if self._drawn is None or now - self._drawn >= self.refresh:
                self._draw(now)

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        parts = [f"{self.label:<10}"]
        if self.total:
            # Filled by bytes when there are any: two 200 MiB uploads half done are half done, not 0/2.
            done, whole = (self.bytes, self.total_bytes) if self.total_bytes else (self.count, self.total)
            filled = max(0, min(_WIDTH, _WIDTH * done // whole))
            parts.append("[" + "#" * filled + "-" * (_WIDTH - filled) + "]")
            parts.append(f"{self.count:,}/{self.total:,} {self.unit}")
        else:
            parts.append(f"{self.count:,} {self.unit}")
        if self.total_bytes:
            parts.append(f"{human_bytes(self.bytes)}/{human_bytes(self.total_bytes)}")
        elif self.bytes:
            parts.append(human_bytes(self.bytes))
        if self.bytes:
            parts.append(f"{human_bytes(int(self.bytes / elapsed))}/s")
        else:
            parts.append(f"{self.count / elapsed:,.1f} {'obj' if self.unit == 'objects' else self.unit}/s")
        if remaining := self.eta(elapsed):
            parts.append(f"ETA {_duration(remaining)}")
        if extra := self._extra():
            parts.append(extra)
        return "  ".join(parts)

    def _extra(self) -> str:
        return self.note() if self.note is not None else self.extra

    def eta(self, elapsed: float) -> float | None:
        """Seconds left: from the byte rate once bytes move (they dominate any transfer worth waiting for),
        else from the object rate; None before anything moved or once everything has."""
        if self.total_bytes and 0 < self.bytes < self.total_bytes:
            return (self.total_bytes - self.bytes) / (self.bytes / elapsed)
        if self.total and 0 < self.count < self.total and not (self.total_bytes and self.bytes >= self.total_bytes):
            return (self.total - self.count) / (self.count / elapsed)
        return None

    def _draw(self, now: float) -> None:
        self._drawn = now
        # \r and erase-to-end-of-line: redraw in place whatever was on the line.
        self.stream.write("\r\x1b[K" + self.line(now))
        self.stream.flush()

    def write_line(self, stream: TextIO, text: str) -> None:
        """A log line above the bar: the bar's line is erased, the text written on it, the bar drawn below."""
        with self._lock:
            if stream is not self.stream:
                stream.write(text + "\n")
                stream.flush()
                return
            self.stream.write("\r\x1b[K" + text + "\n")
            self._draw(self.clock())

    def show(self) -> Bar:
        """Route log lines through write_line until close()."""
        logs.set_line_writer(self.write_line)
        return self

    def close(self) -> None:
        logs.set_line_writer(None)
        with self._lock:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()


class EventBar(Bar):
    """The bar for a CI log (--log-format json, no terminal): a `progress` event every EVENT_S, and one at the end.

    A job's log then shows an apply moving (and how fast, and when it should end) between its
    per-action events, where a silent hour of one large transfer looks like a hang.
    """

    def __init__(self, label: str, *, total: int | None = None, total_bytes: int | None = None,
                 clock: Callable[[], float] = time.monotonic, log: Any = None) -> None:
        super().__init__(label, total=total, total_bytes=total_bytes, clock=clock)
        self.refresh = EVENT_S
        self.log = log if log is not None else logs.get_logger("pixel.progress")
        self._drawn = clock()  # the first event after EVENT_S, not at the first byte

    def fields(self, now: float) -> dict[str, Any]:
        elapsed = max(now - self.started, 1e-9)
        fields: dict[str, Any] = {"what": self.label, "objects": self.count, "bytes": self.bytes}
        if self.total is not None:
            fields["objects_total"] = self.total
        if self.total_bytes is not None:
            fields["bytes_total"] = self.total_bytes
        fields["bytes_per_s"] = int(self.bytes / elapsed)
        fields["elapsed_s"] = round(elapsed, 1)
        if (remaining := self.eta(elapsed)) is not None:
            fields["eta_s"] = round(remaining, 1)
        if extra := self._extra():
            fields["note"] = extra
        return fields

    def _draw(self, now: float) -> None:
        self._drawn = now
        self.log.info("progress", **self.fields(now))

    def show(self) -> Bar:
        return self  # log lines are lines of their own already

    def close(self) -> None:
        with self._lock:
            self._draw(self.clock())


def _bar(
    label: str,
    *,
    output_format: OutputFormat,
    total: int | None = None,
    total_bytes: int | None = None,
    unit: str = "objects",
) -> Bar | None:
    """A live bar for a person, progress events for a CI log under --log-format json, or nothing."""
    if enabled(output_format=output_format):
        return Bar(label, total=total, total_bytes=total_bytes, unit=unit).show()
    if logs.json_logs():
        bar = EventBar(label, total=total, total_bytes=total_bytes)
        bar.unit = unit
        return bar
    return None


Tick = Callable[[int, int], None]


def no_progress(count: int, nbytes: int) -> None:
    """The tick of work nobody is watching (no bar, a caller that passed none): counting is dropped on purpose,
    so the work itself never tests whether anyone listens."""


@contextmanager
def task_progress(
    label: str,
    *,
    total: int | None = None,
    total_bytes: int | None = None,
    unit: str = "objects",
    output_format: OutputFormat = OutputFormat.TEXT,
    show: bool = True,
) -> Iterator[Tick]:
    """`tick(count, nbytes)` for any long command (verify --download, cat): a bar, CI events, or a no-op.

    `show=False` (e.g. `pixel cat` writing records to the same terminal) makes it a no-op whatever else holds.
    """
    bar = _bar(label, output_format=output_format, total=total, total_bytes=total_bytes, unit=unit) if show else None
    if bar is None:
        yield no_progress
        return

    def tick(count: int, nbytes: int) -> None:
        bar.advance(count, nbytes)

    try:
        yield tick
    finally:
        bar.close()


class ProgressReporter:
    """The executor's Reporter: moves a bar as transfers read their sources and passes every event on to `inner`."""

    def __init__(self, inner: Reporter, bar: Bar) -> None:
        self.inner = inner
        self.bar = bar
        self.failed = 0
        self._moved: dict[str, int] = {}
        self._lock = threading.Lock()

    def started(self, action: Action) -> None:
        self.inner.started(action)

    def transferred(self, action: Action, nbytes: int) -> None:
        self.inner.transferred(action, nbytes)
        with self._lock:
            # A retry reads the source again: the bar counts each byte of an action once.
            moved = self._moved.get(action.id, 0)
            step = max(0, min(nbytes, action.size - moved))
            self._moved[action.id] = moved + step
        if step:
            self.bar.advance(0, step)

    def retrying(self, action: Action, attempt: int, delay: float, error: StoreError) -> None:
        self.inner.retrying(action, attempt, delay, error)

    def finished(self, outcome: Outcome) -> None:
        from reconciler.apply.executor import DONE

        self.inner.finished(outcome)
        with self._lock:
            moved = self._moved.pop(outcome.action.id, 0)
        if outcome.status != DONE:
            self.failed += 1
        # Done: whatever the reads did not account for (copies, deletes, manifests); not done: take back its bytes.
        nbytes = outcome.action.size - moved if outcome.status == DONE else -moved
        self.bar.advance(1, nbytes, extra=f"{self.failed} not done" if self.failed else "")

    def close(self) -> None:
        self.bar.close()


@contextmanager
def apply_progress(
    inner: Reporter, plan: Plan, *, output_format: OutputFormat = OutputFormat.TEXT
) -> Iterator[Reporter]:
    """The reporter apply should use: `inner` alone, or wrapped with a live bar when someone is watching."""
    bar = _bar("applying", output_format=output_format, total=len(plan.actions),
               total_bytes=sum(a.size for a in plan.actions))
    if bar is None:
        yield inner
        return
    reporter = ProgressReporter(inner, bar)
    try:
        yield reporter
    finally:
        reporter.close()


ObserveCallback = Callable[[str, int], None]


@contextmanager
def observe_progress(*, output_format: OutputFormat = OutputFormat.TEXT) -> Iterator[ObserveCallback | None]:
    """observe()'s `progress` callback: one bar counting objects listed and local files hashed, and the bytes
    read to hash them as they are read (a cold plan of large files is mostly that)."""
    bar = _bar("observing", output_format=output_format)
    if bar is None:
        yield None
        return
    counts = {"listed": 0, "hashed": 0, "hashed_bytes": 0}
    lock = threading.Lock()

    def note() -> str:
        hashed, read = counts["hashed"], counts["hashed_bytes"]
        return f"{hashed:,} local files hashed" + (f" ({human_bytes(read)} read)" if read else "")

    bar.note = note

    def callback(what: str, n: int) -> None:
        # Called from the hashing threads too ("hashed_bytes", per file read): the counts are shared. The note is
        # worded only when the bar is drawn: 10,000 small files hashed are 10,000 calls and a handful of draws.
        with lock:
            counts[what] = counts.get(what, 0) + n
        bar.advance(n if what == "listed" else 0, n if what == "hashed_bytes" else 0)

    try:
        yield callback
    finally:
        bar.close()


T = TypeVar("T")


def tracked(
    items: Iterable[T],
    label: str = "reading",
    *,
    unit: str = "records",
    total: int | None = None,
    every: int = 256,
    stream: TextIO | None = None,
) -> Iterator[T]:
    """`items`, with a bar on stderr (or progress events in a CI JSON log) while they are consumed.

    The loader's opt-in: `for record in tracked(load_dataset("cot")): ...`. A training loop usually
    reports progress its own way, so load_dataset draws nothing by itself.
    """
    if stream is not None:
        bar: Bar | None = Bar(label, total=total, unit=unit, stream=stream) if enabled(stream) else None
    else:
        bar = _bar(label, output_format=OutputFormat.TEXT, total=total, unit=unit)
    if bar is None:
        yield from items
        return
    pending = 0
    try:
        for item in items:
            yield item
            pending += 1
            if pending == every:
                bar.advance(pending)
                pending = 0
        bar.advance(pending)
    finally:
        bar.close()
