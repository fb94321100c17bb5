"""A plan's first request to S3 is its first ListObjectsV2 page: no HeadBucket (or anything) answered ahead of it.

Proved on the wire, by a proxy in front of SeaweedFS that records each request with the number of answers sent
back before it arrived, and holds every answer but a listing's until a listing has arrived (at most `HOLD_S`:
a plan that waits on another answer before its first page shows that wait as an answer counted before it).
The failures the bucket check words (no such bucket, wrong secret, endpoint down) are still said the same way,
by a HeadBucket sent only once the first listing has failed.
"""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import main
from reconciler.model import S3StoreSpec
from reconciler.stores.base import StoreUnusable
from reconciler.stores.s3.store import S3Store
from tests.cli.test_diagnosable_failures import SPEC  # the one-mapping push the failures there are said for
from tests.faults.proxy import FaultProxy

pytestmark = pytest.mark.integration

HOLD_S = 10.0  # a bound on the hold, never waited out when the listing goes first
FILES = {f"raw/{i:03d}.bin": f"body {i}".encode() for i in range(30)}


class ListingFirst(FaultProxy):
    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, [], deadline=HOLD_S * 3)
        self.listed = threading.Event()
        self.arrivals: list[tuple[str, str, int]] = []  # (method, path, answers sent before it arrived)
        self._answered = 0
        self._count = threading.Lock()

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        listing = method == "GET" and "list-type=2" in path
        with self._count:
            self.arrivals.append((method, path, self._answered))
        if listing:
            self.listed.set()
        else:
            self.listed.wait(HOLD_S)
        answer = super()._forward(method, path, headers, body)
        with self._count:
            self._answered += 1
        return answer

    def first_listing(self) -> tuple[str, str, int]:
        return next(arrival for arrival in self.arrivals if "list-type=2" in arrival[1])


def plan(tmp_path: Path, endpoint: str, bucket: str, env: dict[str, str]) -> Any:
    specs = tmp_path / "specs"
    specs.mkdir(exist_ok=True)
    (specs / "s.yaml").write_text(SPEC.format(bucket=bucket, endpoint=endpoint))
    full = {**env, "PIXEL_ENV_FILE": None, "NO_COLOR": "1", "PIXEL_CACHE_DIR": str(tmp_path / "cache")}
    return CliRunner().invoke(main, ["plan", "--format", "json", "--specs", str(specs)], env=full)


@pytest.fixture
def synced(tmp_path: Path, seaweed: Any, bucket: str, s3_client: Any) -> str:
    """A local tree and the bucket holding the same bytes (single-part: each ETag is the md5)."""
    for key, body in FILES.items():
        path = tmp_path / "data" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    return bucket


def test_a_plans_first_request_is_its_listing_and_no_head_is_sent(
    tmp_path: Path, seaweed: Any, synced: str
) -> None:
    proxy = ListingFirst(seaweed.endpoint)
    with proxy:
        result = plan(tmp_path, proxy.endpoint, synced, seaweed.env())
    assert result.exit_code == 0, result.output
    assert '"actions": []' in result.stdout  # in sync: every md5 taken from a listed ETag
    method, _, answered_before = proxy.first_listing()
    assert (method, answered_before) == ("GET", 0), proxy.arrivals  # no round trip ahead of the first page
    # Neither HeadBucket nor a HEAD per object (the ETags were judged md5s once the encryption answer came).
    assert [arrival for arrival in proxy.arrivals if arrival[0] == "HEAD"] == []
    # Besides the listing's pages, one request: the bucket's encryption, sent beside the first page.
    others = [path for _, path, _ in proxy.arrivals if "list-type=2" not in path]
    assert [path.partition("?")[2] for path in others] == ["encryption="], proxy.arrivals


@pytest.mark.parametrize("failure", ["no such bucket", "wrong secret"])
def test_a_failed_first_listing_asks_head_bucket_why_and_says_it_as_before(
    tmp_path: Path, seaweed: Any, bucket: str, failure: str
) -> None:
    (tmp_path / "data" / "raw").mkdir(parents=True)
    env = seaweed.env()
    name = bucket
    if failure == "no such bucket":
        name = "pixel-no-such-bucket"
        said = f'Error: store "s3": bucket "{name}" does not exist at '
    else:
        env = {**env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
        said = f'Error: store "s3": bucket "{bucket}" at '
    proxy = ListingFirst(seaweed.endpoint)
    with proxy:
        result = plan(tmp_path, proxy.endpoint, name, env)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(said), result.stderr
    if failure == "wrong secret":
        assert "denied (403 SignatureDoesNotMatch)" in errors[0] and "not-the-secret" not in result.stderr
    assert proxy.first_listing()[2] == 0, proxy.arrivals
    methods = [method for method, _, _ in proxy.arrivals]
    # HeadBucket asked only once the listing had failed.
    assert "HEAD" in methods and methods.index("HEAD") > proxy.arrivals.index(proxy.first_listing()), proxy.arrivals


def test_a_down_endpoint_is_said_as_before(tmp_path: Path, seaweed: Any) -> None:
    (tmp_path / "data" / "raw").mkdir(parents=True)
    result = plan(tmp_path, "http://127.0.0.1:9", "pixel-data", seaweed.env())
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith('Error: store "s3": reach bucket "pixel-data"'), result.stderr


def test_a_write_before_any_listing_is_checked_first_and_said_as_the_store(seaweed: Any, aws_env: Any) -> None:
    spec = S3StoreSpec(
        name="s3", bucket="pixel-no-such-bucket", endpoint=seaweed.endpoint, region="us-east-1",
        addressing_style="path",
    )
    store = S3Store(spec)
    store.check_on_first_use()
    body = b"x"
    with pytest.raises(StoreUnusable, match='bucket "pixel-no-such-bucket" does not exist') as missing:
        store.write("k", lambda: io.BytesIO(body), size=1, md5=hashlib.md5(body).hexdigest())
    assert missing.value.code == "NoSuchBucket"
