"""The tools under test, each driven as a user would drive it from a shell: one process per step.

Every tool syncs a local tree to `bucket/prefix` on the same SeaweedFS server.
"""

from __future__ import annotations

import compileall
import functools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import Run, run


@dataclass
class Target:
    """Where one tool's copy of the dataset lives, locally and in S3."""

    src: Path
    bucket: str
    prefix: str
    endpoint: str
    env: Mapping[str, str]  # AWS_* for the throwaway server, plus the caller's environment
    work: Path  # scratch space for this tool (specs, caches)


PEERS_BIN = Path(__file__).resolve().parents[1] / ".venv-peers" / "bin"  # `make bench-peers` puts awscli there


def find(program: str) -> str | None:
    """The peers' virtualenv, then the harness's own (pixel), then PATH."""
    for folder in (PEERS_BIN, Path(sys.prefix) / "bin"):
        if (folder / program).exists():
            return str(folder / program)
    return shutil.which(program)


@dataclass
class Pixel:
    name: str = "pixel"
    files_read: list[int] = field(default_factory=list)

    def available(self) -> bool:
        return True

    def version(self) -> str:
        from importlib.metadata import version

        return version("pixel-reconciler")

    def _specs(self, t: Target) -> Path:
        specs = t.work / "specs"
        if not specs.exists():
            specs.mkdir(parents=True)
            (specs / "bench.yaml").write_text(
                "stores:\n"
                "  bench:\n"
                "    type: s3\n"
                f"    bucket: {t.bucket}\n"
                f"    endpoint: {t.endpoint}\n"
                "    region: us-east-1\n"
                "    addressing_style: path\n"
                "  src:\n"
                "    type: local\n"
                f"    root: {t.src}\n"
                "mappings:\n"
                "  - name: bench\n"
                "    from: 'src:'\n"
                f"    to: 'bench:{t.prefix}'\n"
                "    authority: local\n"
                "    prune: true\n"
            )
        return specs

    def _pixel(self, t: Target, *args: str, cache: Path, ok: tuple[int, ...] = (0,)) -> Run:
        compiled()
        env = {**t.env, "PIXEL_CACHE_DIR": str(cache), "CI": "true"}
        argv = [str(find("pixel")), *args, "--specs", str(self._specs(t)), "--log-format", "json"]
        return run(argv, env=env, ok=ok)

    def cache(self, t: Target, name: str = "cache") -> Path:
        path = t.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def upload(self, t: Target) -> Run:
        return self._pixel(t, "apply", "--auto-approve", cache=self.cache(t, "upload-cache"))

    def noop(self, t: Target, *, cold: bool, extra: tuple[str, ...] = ()) -> Run:
        """`pixel plan --detailed-exitcode` must exit 0: nothing to do."""
        cache = Path(tempfile.mkdtemp(dir=t.work, prefix="cold-")) if cold else self.cache(t, "noop-cache")
        result = self._pixel(t, "plan", "--detailed-exitcode", *extra, cache=cache)
        self.files_read.append(hashed(result.stderr)[0])
        return result

    def sync(self, t: Target) -> Run:
        return self._pixel(t, "apply", "--auto-approve", cache=self.cache(t, "noop-cache"))


@functools.cache
def compiled() -> None:
    """pixel's own modules compiled to bytecode once, before it is timed, as pip compiles an installed package.

    An editable install run with PYTHONDONTWRITEBYTECODE=1 (set in some shells and CI images) otherwise
    compiles every module it imports from source on every run: 0.27 s of CPU per pixel process on the
    bench machine (0.64 s against 0.37 s for the imports of an apply), which the peers, installed with
    their bytecode, never pay. Python reads the bytecode whatever that variable says.
    """
    import reconciler

    compileall.compile_dir(Path(reconciler.__file__).parent, quiet=1)


def hashed(stderr: str) -> tuple[int, int]:
    """(files read, files from cache) from pixel's `local files hashed` log event."""
    for line in stderr.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "local files hashed":
                return int(event["read"]), int(event["from_cache"])
    raise RuntimeError("pixel logged no 'local files hashed' event:\n" + stderr[-2000:])


@dataclass
class AwsCli:
    name: str = "aws s3 sync"

    def available(self) -> bool:
        return find("aws") is not None

    def version(self) -> str:
        return run([str(find("aws")), "--version"], env=os.environ).stdout.strip().split(" ")[0]

    def _aws(self, t: Target, *args: str) -> Run:
        argv = [str(find("aws")), "s3", "sync", str(t.src), f"s3://{t.bucket}/{t.prefix}", *args]
        return run([*argv, "--endpoint-url", t.endpoint, "--only-show-errors"], env=t.env)

    def upload(self, t: Target) -> Run:
        return self._aws(t)

    def noop(self, t: Target, *, cold: bool) -> Run:
        return self._aws(t, "--dryrun")

    def sync(self, t: Target) -> Run:
        return self._aws(t)


@dataclass
class Rclone:
    name: str = "rclone"

    def available(self) -> bool:
        return find("rclone") is not None

    def version(self) -> str:
        return run([str(find("rclone")), "version"], env=os.environ).stdout.splitlines()[0]

    def _env(self, t: Target) -> dict[str, str]:
        # A remote named `bench` configured from the environment: no rclone.conf is written.
        # AWS_CA_BUNDLE (set on some machines for HTTPS proxies) makes rclone refuse its plain-HTTP transport.
        base = {k: v for k, v in t.env.items() if k != "AWS_CA_BUNDLE"}
        return {
            **base,
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "SeaweedFS",
            "RCLONE_CONFIG_BENCH_ENV_AUTH": "true",
            "RCLONE_CONFIG_BENCH_ENDPOINT": t.endpoint,
            "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
            "RCLONE_CONFIG": str(t.work / "rclone.conf"),
        }

    def _rclone(self, t: Target, verb: str, *args: str) -> Run:
        argv = [str(find("rclone")), verb, str(t.src), f"bench:{t.bucket}/{t.prefix}", *args]
        return run(argv, env=self._env(t))

    def upload(self, t: Target) -> Run:
        return self._rclone(t, "copy")

    def noop(self, t: Target, *, cold: bool) -> Run:
        return self._rclone(t, "check")

    def sync(self, t: Target) -> Run:
        return self._rclone(t, "sync")
