"""Deadlines on every S3 request, against a tiny server of the test's own: one that accepts connections and
never answers, and one that answers HEAD, then stalls a listing halfway through its body.

Each `pixel plan` runs in this process on a thread of its own, the test waiting for it no longer than a guard:
without deadlines it waited 25 minutes and more, and the guard fails the test instead. The deadlines are the
sockets', not the process's, so a child would prove nothing more. Small deadlines come in through the
environment, as a CI job would set them. The retries after a timeout are all made, on a clock that does not
wait: the backoff is not what these tests are about.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from reconciler.model import S3StoreSpec
from reconciler.stores.base import StoreError
from reconciler.stores.s3.store import S3Store, make_client
from tests.integration.pixelenv import Run, pixel_in_process, write_specs

GUARD = 90  # seconds: far above what the deadlines allow, far below the old hang

pytestmark = pytest.mark.usefixtures("retries_on_a_clock_that_does_not_wait", "no_ambient_s3_settings")

T = TypeVar("T")


def guarded(call: Callable[[], T]) -> T:
    """`call()` on a thread of its own, waited for no longer than GUARD: a hang fails the test, naming the guard,
    where a child's subprocess timeout did (the thread is a daemon, left behind only by a test already failed)."""
    answer: list[T] = []
    thread = threading.Thread(target=lambda: answer.append(call()), daemon=True)
    thread.start()
    thread.join(GUARD)
    assert answer, f"still waiting after {GUARD} s: no deadline held"
    return answer[0]

Handler = Callable[[socket.socket], None]


class TinyServer:
    """Accepts on a loopback port; each connection is given to `handler` in a thread of its own."""

    def __init__(self, handler: Handler) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handler = handler
        self.open: list[socket.socket] = []
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed at the end of the test
            self.open.append(conn)
            threading.Thread(target=self.handler, args=(conn,), daemon=True).start()

    def __enter__(self) -> TinyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        for conn in self.open:
            conn.close()


def never_answers(conn: socket.socket) -> None:
    """Reads what is sent and says nothing: the connection stays open until the test ends."""
    try:
        while conn.recv(65536):
            pass
    except OSError:
        return


def request_line(conn: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return ""
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def stalls_the_listing(conn: socket.socket) -> None:
    """HEAD bucket: 200. Anything else but a listing: 404. A listing: its headers and the first bytes of its
    body, then nothing more."""
    try:
        while line := request_line(conn):
            method, target, _ = line.split(" ", 2)
            if method == "HEAD":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nServer: tiny\r\n\r\n")
            elif "list-type=2" in target:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 5000\r\n\r\n<?xml")
                never_answers(conn)
                return
            else:
                body = b"<Error><Code>NoSuchKey</Code></Error>"
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    except OSError:
        return


@pytest.fixture
def profile_env(tmp_path: Path) -> dict[str, str]:
    """Credentials from a profile: botocore decides endpoint and keys, so the requests go through it."""
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[stalled]\naws_access_key_id = test\naws_secret_access_key = test-secret\n")
    return {"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_PROFILE": "stalled"}


STATIC_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test-secret"}


@pytest.fixture
def no_ambient_s3_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test gives: no AWS_* or PIXEL_S3_* of this process's environment reaches its command."""
    for name in [k for k in os.environ if k.startswith(("AWS_", "PIXEL_S3_"))]:
        monkeypatch.delenv(name)


def plan(tmp_path: Path, port: int, env: dict[str, str], *args: str, store: tuple[str, ...] = ()) -> Run:
    """`pixel plan`, deadlines of 2 s (connect) and 0.3 s (read) from the environment unless `env` says
    otherwise (an empty value: unset); `store`: more lines for the S3 store's spec. The read deadline is short
    because most of these servers never answer: every test waits it out at least once."""
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True, exist_ok=True)
    specs = write_specs(
        tmp_path / "specs",
        endpoint=f"http://127.0.0.1:{port}",
        bucket="stalled",
        root=root,
        mappings=[{"name": "raw", "from": "disk:raw", "to": "s3:raw/"}],
        s3_extra=store,
    )
    deadlines = {"PIXEL_S3_CONNECT_TIMEOUT": "2", "PIXEL_S3_READ_TIMEOUT": "0.3"}
    given = {k: v for k, v in {**deadlines, **env}.items() if v}
    return guarded(lambda: pixel_in_process(["plan", "--specs", str(specs), *args], given))


def one_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture
def silent() -> Iterator[TinyServer]:
    with TinyServer(never_answers) as server:
        yield server


@pytest.mark.parametrize("credentials", ["static keys", "profile"])
def test_an_endpoint_that_never_answers_fails_naming_it_and_the_deadline(
    tmp_path: Path, silent: TinyServer, profile_env: dict[str, str], credentials: str
) -> None:
    result = plan(tmp_path, silent.port, profile_env if credentials == "profile" else STATIC_ENV)
    assert result.code == 1
    message = one_error(result.err)
    assert f'store "s3": list raw/: no progress from http://127.0.0.1:{silent.port}' in message
    assert "read deadline of 0.3 s" in message and "PIXEL_S3_READ_TIMEOUT" in message


def test_botocores_requests_carry_the_deadline_too(silent: TinyServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in STATIC_ENV.items():
        monkeypatch.setenv(name, value)
    spec = S3StoreSpec(name="s3", bucket="stalled", endpoint=f"http://127.0.0.1:{silent.port}", region="us-east-1",
                       addressing_style="path", read_timeout=1.0)

    def head() -> str:
        try:
            S3Store(spec, client=make_client(spec)).check_bucket()  # an injected client: botocore sends the HEAD
        except StoreError as exc:
            return f"{exc.code} {exc}"
        return "no error"

    said = guarded(head)
    assert said.startswith('Timeout store "s3": head bucket stalled'), said
    assert f"http://127.0.0.1:{silent.port}" in said and "PIXEL_S3_READ_TIMEOUT" in said


def test_the_flag_outranks_the_environment(tmp_path: Path, silent: TinyServer) -> None:
    result = plan(tmp_path, silent.port, STATIC_ENV, "--s3-read-timeout", "0.2")
    assert result.code == 1
    assert "read deadline of 0.2 s" in one_error(result.err)


def test_a_deadline_in_the_store_spec_is_used(tmp_path: Path, silent: TinyServer) -> None:
    result = plan(tmp_path, silent.port, {**STATIC_ENV, "PIXEL_S3_READ_TIMEOUT": ""}, store=("read_timeout: 0.2",))
    assert result.code == 1
    assert "read deadline of 0.2 s" in one_error(result.err)


def test_a_bad_deadline_in_the_environment_is_one_error(tmp_path: Path, silent: TinyServer) -> None:
    result = plan(tmp_path, silent.port, {**STATIC_ENV, "PIXEL_S3_READ_TIMEOUT": "soon"})
    assert result.code == 1
    assert "PIXEL_S3_READ_TIMEOUT='soon': expected a number of seconds above 0" in one_error(result.err)


def test_a_listing_that_stalls_midway_is_detected_by_lack_of_progress(tmp_path: Path) -> None:
    with TinyServer(stalls_the_listing) as server:
        # 1 s: the listing's first bytes must come within the deadline, to a thread of a loaded machine.
        result = plan(tmp_path, server.port, {**STATIC_ENV, "PIXEL_S3_READ_TIMEOUT": "1"})
    assert result.code == 1
    message = one_error(result.err)
    assert f"no progress from http://127.0.0.1:{server.port}" in message and "raw/" in message


def test_a_deadline_of_zero_in_the_spec_is_a_located_error(tmp_path: Path) -> None:
    result = plan(tmp_path, 9, STATIC_ENV, store=("read_timeout: 0",))
    assert result.code == 1
    assert "specs.yaml:9: stores.s3.read_timeout: expected a number of seconds above 0, got integer 0" in result.err
