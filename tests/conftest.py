"""Fixtures shared by every test directory.

`seaweed` is one real SeaweedFS server for the whole session (about a second to
start); `bucket` gives each test its own empty bucket on it. Integration tests
that let pixel's own code find credentials in the environment ask for
`aws_env`; unit tests with moto set their own fake credentials and never see
the server's.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from hypothesis import HealthCheck, settings

from reconciler.dev.seaweed import (
    FOREIGN_AWS_ENV,
    SeaweedError,
    SeaweedServer,
    find_weed,
    unique_bucket_name,
    validate_bucket_name,
)
from reconciler.stores import retry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# A property's examples are judged by what they return, never by how long they took: Hypothesis's default 200 ms
# deadline and its too-slow health check are timed assertions, and a worker sharing 2 cores with three others
# (and the lead's run) trips them on code that is not slow. A test's own @settings still adds to this.
settings.register_profile("pixel", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pixel")

_MARKERS = {
    "integration": "talks to a real SeaweedFS server over HTTP",
    "slow": "takes more than a few seconds",
}


def pytest_configure(config: pytest.Config) -> None:
    declared = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    for name, help_text in _MARKERS.items():
        if name not in declared:
            config.addinivalue_line("markers", f"{name}: {help_text}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a slow test first, each module's tests in their own order. xdist (--dist loadfile) hands
    modules to workers in this order: a minutes-long module started last would leave one worker running it
    alone at the end while the other idles."""
    slow = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in slow)


# Child processes the session started, by program: each `pixel` or `python -c` child pays an interpreter start and
# pixel's imports (~0.2-0.4 CPU-s), the suite's biggest fixed cost after the worlds. Counted in each xdist worker,
# summed by the controller, printed after the durations so a change that adds hundreds is seen.
_CHILDREN: Counter[str] = Counter()


def _program(args: Any) -> str:
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    name = Path(os.fsdecode(argv[0])).name if argv else "?"
    if name.startswith("python") and len(argv) > 2 and os.fsdecode(argv[1]) == "-m":
        return f"python -m {os.fsdecode(argv[2])}"
    return name


@pytest.fixture(scope="session", autouse=True)
def _count_children() -> Iterator[None]:
    started = subprocess.Popen.__init__

    def counted(self: subprocess.Popen[Any], args: Any, *rest: Any, **options: Any) -> None:
        _CHILDREN[_program(args)] += 1
        started(self, args, *rest, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", counted)
        yield


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its counts travel to the controller
        workeroutput["children"] = dict(_CHILDREN)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    _CHILDREN.update(getattr(node, "workeroutput", {}).get("children", {}))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _CHILDREN:
        top = ", ".join(f"{name} {count}" for name, count in _CHILDREN.most_common(8))
        terminalreporter.write_line(f"child processes started: {sum(_CHILDREN.values())} ({top})")


@pytest.fixture(scope="session", autouse=True)
def _no_foreign_aws_identity() -> Iterator[None]:
    """A developer's AWS_PROFILE or session token must never reach a test's client, fake or real."""
    with pytest.MonkeyPatch.context() as patch:
        for name in FOREIGN_AWS_ENV:
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session", autouse=True)
def _own_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each session (each xdist worker) its own default cache: no test reads or locks the developer's, or another
    worker's, hash cache or dataset cache, so a counted cache hit or a lock held never depends on who else runs.
    A test that names PIXEL_CACHE_DIR still wins."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedServer]:
    """One SeaweedFS S3 server on free loopback ports, shared by the session and stopped at its end."""
    try:
        find_weed()
    except SeaweedError as exc:
        # CI installs the dev extras: a missing binary there is a broken setup, not a reason to skip.
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    with SeaweedServer() as server:
        yield server


@pytest.fixture(scope="session")
def _bucket_admin(seaweed: SeaweedServer) -> S3Client:
    """One client that creates and deletes every test's bucket. A boto3 client costs ~0.12 s of CPU to make
    (its service model); `seaweed.create_bucket` and `delete_bucket` make one each, twice per integration test.
    No test gets this client, so no test's event handlers or stubs reach another's buckets."""
    return seaweed.client()


@pytest.fixture
def bucket(_bucket_admin: S3Client, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty bucket of this test's own, deleted with its contents afterwards."""
    name = validate_bucket_name(unique_bucket_name(request.node.name))
    # As SeaweedServer.create_bucket and delete_bucket do, on the session's one client.
    with contextlib.suppress(_bucket_admin.exceptions.BucketAlreadyOwnedByYou):
        _bucket_admin.create_bucket(Bucket=name)
    yield name
    # SeaweedFS keeps a volume per bucket; without this, a long session accumulates hundreds.
    try:
        with contextlib.suppress(_bucket_admin.exceptions.NoSuchBucket):
            _bucket_admin.delete_bucket(Bucket=name)
    except (BotoCoreError, ClientError) as exc:
        warnings.warn(f"could not delete test bucket {name}: {exc}", stacklevel=1)


@pytest.fixture(scope="session")
def _session_s3_client(seaweed: SeaweedServer) -> S3Client:
    return seaweed.client()


@pytest.fixture
def s3_client(_session_s3_client: S3Client) -> S3Client:
    """A boto3 client for the session's server (path-style, checksums only when required): one for the session,
    apart from `_bucket_admin`'s, since making one costs ~0.12 CPU-s and no test changes it (events, stubs)."""
    return _session_s3_client


@pytest.fixture
def aws_env(seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The server's credentials and region in os.environ for this test; returns them too."""
    env = seaweed.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def retries_on_a_clock_that_does_not_wait() -> Iterator[None]:
    """For a test whose subject is not the waiting: a dead endpoint's refusals are retried as every transient error
    is, all attempts still made, but the waits between them (up to 3.75 s of real time a plan, in this process)
    pass at once. The policy is a frozen dataclass every S3 call takes by default, so its clock is swapped in
    place and put back."""
    policy = retry.DEFAULT_POLICY
    real = policy.sleep
    object.__setattr__(policy, "sleep", lambda seconds: None)
    try:
        yield
    finally:
        object.__setattr__(policy, "sleep", real)
