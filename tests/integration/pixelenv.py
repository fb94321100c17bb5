"""Helpers for tests that drive the pixel CLI against the SeaweedFS fixture."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from reconciler.dev.seaweed import SeaweedServer

PIXEL = str(Path(sys.executable).with_name("pixel"))


@dataclass
class Run:
    code: int
    out: str
    err: str
    max_rss_kib: int = 0


def write_specs(
    spec_dir: Path,
    *,
    endpoint: str,
    bucket: str,
    root: Path,
    mappings: list[Mapping[str, object]],
    s3_extra: tuple[str, ...] = (),
) -> Path:
    spec_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "stores:",
        "  s3:",
        "    type: s3",
        f"    bucket: {bucket}",
        f"    endpoint: {endpoint}",
        "    region: us-east-1",
        "    addressing_style: path",
        "    checksum: when_required",
        *(f"    {line}" for line in s3_extra),
        "  disk:",
        "    type: local",
        f"    root: {root}",
        "mappings:",
    ]
    for m in mappings:
        first = True
        for key, value in m.items():
            rendered = str(value).lower() if isinstance(value, bool) else value
            lines.append(f"  {'- ' if first else '  '}{key}: {rendered}")
            first = False
    (spec_dir / "specs.yaml").write_text("\n".join(lines) + "\n")
    return spec_dir


def pixel(args: list[str], env: Mapping[str, str], *, cwd: Path | None = None, stdin: str = "") -> Run:
    """Run the real console script in a child process and record its peak RSS."""
    full_env = {**os.environ, **env, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [PIXEL, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd=cwd,
        text=True,
    )
    out, err = proc.communicate(stdin, timeout=300)
    return Run(proc.returncode, out, err)


def pixel_in_process(args: list[str], env: Mapping[str, str], *, cwd: Path | None = None, stdin: str = "") -> Run:
    """`pixel ARGS` called in this process: the `Run` that `pixel()`'s child gives, without the child.

    For a test about what a command does rather than the process around it: a `pixel` child costs an
    interpreter start and pixel's imports (~0.5 CPU-s), here paid once per worker. It calls the console
    script's own entry (`reconciler.cli.main`, in click's standalone mode: a usage error exits 1 and prints
    what the child prints), for this call only with:

    - `os.environ` plus `env` and NO_COLOR=1, put back afterwards whatever the command set (`--env-file`);
    - stdout and stderr captured as the child's pipes (not terminals: no colour, no progress bar, click's
      help 80 columns wide), stdin holding `stdin` then EOF, `cwd` as the working directory;
    - Python's default warning filters and the stdlib logging's last-resort handler, so a library's warning
      reaches stderr as in the child rather than pytest's capture;
    - the child's exit code: SystemExit's, or 1 with the traceback on stderr for an uncaught exception.

    Afterwards pixel's logging and progress settings are what they were, and the dataset cache's background
    writes are finished (a child's interpreter waits for them at exit).

    Keep `pixel()` where the process is the point: kill -9 and crash tests, signals and interrupts, peak RSS
    or import time (what a fresh interpreter loads), the installed console script or wheel, a terminal on
    stdin, `pixel serve` (it serves until stopped), and commands running at the same time (this one changes
    os.environ and the working directory of the whole process)."""
    from reconciler.cli import main

    out, err = _pipe("strict"), _pipe("backslashreplace")
    with _as_a_child(env, cwd, out, err, _pipe("strict", stdin)):
        try:
            main.main(args=list(args), prog_name="pixel", standalone_mode=True)
            code = 0
        except SystemExit as exc:
            code = _status(exc.code, err)
        except Exception:  # the interpreter of a child prints an uncaught exception and exits 1
            traceback.print_exc(file=err)
            code = 1
        _finish_cache_writes()
    return Run(code, _read(out), _read(err))


def _pipe(errors: str, text: str = "") -> io.TextIOWrapper:
    """A text stream over bytes, as a child's stdio on a pipe (utf-8; `.buffer` for binary writers)."""
    return io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8", errors=errors, line_buffering=False)


def _read(stream: io.TextIOWrapper) -> str:
    """What `subprocess` in text mode reads of it: decoded, newlines translated."""
    stream.flush()
    raw = stream.buffer.getvalue()  # type: ignore[attr-defined]
    return io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8").read()


def _status(code: object, err: io.TextIOWrapper) -> int:
    """The status the interpreter exits with for `SystemExit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code % 256
    print(code, file=err)
    return 1


@contextlib.contextmanager
def _as_a_child(
    env: Mapping[str, str], cwd: Path | None, out: io.TextIOWrapper, err: io.TextIOWrapper, inp: io.TextIOWrapper
) -> Iterator[None]:
    from reconciler import logs, progress

    environ = dict(os.environ)
    here = os.getcwd()
    streams = {name: getattr(sys, name) for name in _STDIO}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    said = (logs._FORMAT["name"], logs._JSON[0], logs._STRUCTLOG_LATER[0], logs._LINE_WRITER[0])
    quiet, hook = progress.quiet(), threading.excepthook
    structlog_config = _structlog_config()
    os.environ.update({**env, "NO_COLOR": "1"})
    # shutil.get_terminal_size reads sys.__stdout__: a pipe has no size, so click wraps at 80 as in the child.
    for name, stream in zip(_STDIO, (inp, out, err) * 2, strict=True):
        setattr(sys, name, stream)
    root.handlers, root.level = [], logging.WARNING
    threading.excepthook = threading.__excepthook__
    try:
        with warnings.catch_warnings():
            warnings.resetwarnings()
            for category in _IGNORED_WARNINGS:
                warnings.simplefilter("ignore", category)
            warnings.showwarning = _show_warning
            if cwd is not None:
                os.chdir(cwd)
            yield
    finally:
        os.chdir(here)
        for name, stream in streams.items():
            setattr(sys, name, stream)
        root.handlers, root.level = handlers, level
        logs._FORMAT["name"], logs._JSON[0], logs._STRUCTLOG_LATER[0], logs._LINE_WRITER[0] = said
        progress.configure(quiet=quiet)
        threading.excepthook = hook
        if "structlog" in sys.modules:
            import structlog

            if structlog_config:
                structlog.configure(**structlog_config)
            else:
                structlog.reset_defaults()
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        os.environ.update(environ)


_STDIO = ("stdin", "stdout", "stderr", "__stdin__", "__stdout__", "__stderr__")
# What the interpreter ignores with no -W and no PYTHONWARNINGS; any other warning is shown once per place.
_IGNORED_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """The interpreter's own way of showing a warning (pytest records them instead): to stderr, formatted."""
    (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))


def _structlog_config() -> dict[str, Any] | None:
    """structlog's configuration when structlog is loaded and configured (a command configures it for its own
    stderr); {} when it is loaded with its defaults."""
    if "structlog" not in sys.modules:
        return None
    import structlog

    return dict(structlog.get_config()) if structlog.is_configured() else {}


def _finish_cache_writes() -> None:
    """Wait for the dataset cache's durable writes queued on its one background thread (FIFO)."""
    cache = sys.modules.get("reconciler.loader.cache")
    finishing = getattr(cache, "_finishing", None)
    if finishing is not None:
        finishing.submit(lambda: None).result()


# The child reports its own peak RSS (VmHWM) on exit. wait4's ru_maxrss cannot be used: Linux
# carries the parent's high-water mark into a (v)forked child across exec, so it reads as the
# test process's own RSS whenever that is larger.
_HWM_MARK = "PIXEL_TEST_VMHWM_KIB="
_HWM_WRAPPER = f"""
import atexit, sys
def _report():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                sys.stderr.write("\\n{_HWM_MARK}" + line.split()[1] + "\\n")
atexit.register(_report)
from reconciler.cli import main
sys.argv[0] = "pixel"
main()
"""


def pixel_rss(args: list[str], env: Mapping[str, str]) -> Run:
    """Like pixel() but also returns the child's own peak RSS in KiB."""
    full_env = {**os.environ, **env, "NO_COLOR": "1"}
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen([sys.executable, "-c", _HWM_WRAPPER, *args], stdin=subprocess.DEVNULL,
                                stdout=devnull, stderr=subprocess.PIPE, env=full_env)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        proc.wait()
    lines = err.splitlines()
    peaks = [int(line[len(_HWM_MARK):]) for line in lines if line.startswith(_HWM_MARK)]
    err = "\n".join(line for line in lines if not line.startswith(_HWM_MARK))
    assert peaks, f"the pixel child did not report its peak RSS: {err}"
    return Run(proc.returncode, "", err, peaks[-1])


def push_world(seaweed: SeaweedServer, bucket: str, tmp_path: Path, files: int) -> tuple[Path, dict[str, str]]:
    """`files` small JSON Lines files in three folders, one pushing mapping that prunes, and the environment of a
    child `python` that sees this interpreter's packages, a cache of its own and no ~/.aws of the developer's."""
    root = tmp_path / "data"
    for i in range(files):
        (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 3}" / f"f{i}.jsonl").write_text(f'{{"i": {i}}}\n')
    specs = write_specs(
        tmp_path / "specs",
        endpoint=seaweed.endpoint,
        bucket=bucket,
        root=root,
        mappings=[{"name": "m", "from": "'disk:'", "to": "'s3:data/'", "authority": "local", "prune": True}],
    )
    home = tmp_path / "home"
    home.mkdir()
    env = seaweed.child_env(
        {"PIXEL_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(home), "NO_COLOR": "1",
         "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    return specs, env
