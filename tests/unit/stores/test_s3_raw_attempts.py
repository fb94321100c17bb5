"""The direct path's one attempt loop: whole and streamed requests resend a dropped connection alike.

A kept-alive connection the server closed is resent at once, signed afresh, with a streamed body
rewound; a deadline is never resent (it would double a command's wait); a refusal is an S3Refusal
with the server's code, so `translate_raw()` classifies it as any other failure.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

import pytest

from reconciler.stores.base import TransientStoreError
from reconciler.stores.s3.credentials import StaticCredentials
from reconciler.stores.s3.direct.http_pool import DeadlineExceeded, Response
from reconciler.stores.s3.direct.raw import DirectTransport
from reconciler.stores.s3.errors import S3Refusal

KEYS = StaticCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
REFUSED = b"<Error><Code>PreconditionFailed</Code><Message>At least one precondition failed</Message></Error>"


@dataclass
class _Body:
    """A streamed answer as the pool hands it out."""

    status: int
    data: bytes
    reason: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def read(self, n: int | None = -1) -> bytes:
        data, self.data = self.data, b""
        return data


@dataclass
class _Pool:
    """Answers each request with the next of `answers` (an exception is raised instead)."""

    answers: list[BaseException | _Body]
    sent: list[tuple[str, str, Mapping[str, str], bytes | None]] = field(default_factory=list)

    def _next(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None) -> _Body:
        self.sent.append((method, target, dict(headers), body))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | bytearray | memoryview | BinaryIO | None,
        headers: Mapping[str, str],
    ) -> Response:
        sent = body.read() if isinstance(body, io.BytesIO) else None
        answer = self._next(method, target, headers, sent)
        return Response(answer.status, answer.reason, answer.headers, answer.read())

    def stream(self, method: str, target: str, *, headers: Mapping[str, str]) -> _Body:
        return self._next(method, target, headers, None)


def raw_with(answers: list[BaseException | _Body]) -> tuple[DirectTransport, _Pool]:
    raw = DirectTransport(
        "http://127.0.0.1:9/bucket/", "us-east-1", lambda: KEYS, bucket="bucket", pool_size=1, connect_timeout=1.0,
        read_timeout=1.0,
    )
    pool = _Pool(answers)
    raw._pool = pool  # type: ignore[assignment]
    return raw, pool


def test_a_streamed_get_resends_a_dropped_connection_once_signed_afresh() -> None:
    raw, pool = raw_with([ConnectionResetError("closed by peer"), _Body(200, b"payload")])
    streamed = raw.get_object("a dir/x.bin", {"IfMatch": '"etag"'})
    assert streamed.body.read() == b"payload"
    assert [(method, target) for method, target, _, _ in pool.sent] == [("GET", "/bucket/a%20dir/x.bin")] * 2
    assert all(headers["If-Match"] == '"etag"' and "Authorization" in headers for _, _, headers, _ in pool.sent)


def test_a_streamed_get_gives_up_after_its_attempts() -> None:
    raw, pool = raw_with([ConnectionResetError("one"), ConnectionResetError("two"), _Body(200, b"never")])
    with pytest.raises(ConnectionResetError, match="two"):
        raw.get_object("x", {})
    assert len(pool.sent) == 2


@pytest.mark.parametrize("streamed", [True, False])
def test_a_deadline_is_never_resent(streamed: bool) -> None:
    raw, pool = raw_with([DeadlineExceeded("no byte in 1 s"), _Body(200, b"late")])
    with pytest.raises(DeadlineExceeded):
        if streamed:
            raw.get_object("x", {})
        else:
            raw.put_object("x", b"data", 4, {})
    assert len(pool.sent) == 1


def test_a_refused_get_is_a_refusal_with_the_servers_code() -> None:
    raw, _ = raw_with([_Body(412, REFUSED, reason="Precondition Failed")])
    with pytest.raises(S3Refusal) as refused:
        raw.get_object("x", {"IfMatch": '"old"'})
    refusal = refused.value
    assert (refusal.code, refusal.status, refusal.operation) == ("PreconditionFailed", 412, "GetObject")


def test_a_put_resends_its_stream_from_where_it_stood() -> None:
    body = io.BytesIO(b"skip|sent")
    body.seek(5)
    raw, pool = raw_with([BrokenPipeError("closed"), _Body(200, b"", headers={"ETag": '"abc"'})])
    assert raw.put_object("x", body, 4, {}) == "abc"
    assert [sent for _, _, _, sent in pool.sent] == [b"sent", b"sent"]


INTERNAL = b"<Error><Code>InternalError</Code><Message>We encountered an internal error</Message></Error>"


@pytest.mark.parametrize("operation", ["copy", "complete"])
def test_a_copy_or_complete_failing_after_its_200_is_a_refusal_not_a_success(operation: str) -> None:
    """S3 may send 200 and then fail a CopyObject or CompleteMultipartUpload: the body is then an <Error>."""
    raw, _ = raw_with([_Body(200, INTERNAL)])
    with pytest.raises(S3Refusal) as refused:
        if operation == "copy":
            raw.copy_object("src", "dst", {"IfNoneMatch": "*"})
        else:
            raw.complete_multipart_upload("k", "upload-1", [{"ETag": '"e"', "PartNumber": 1}], {})
    assert refused.value.code == "InternalError"
    assert isinstance(raw.translate(refused.value, key="k", action="copy"), TransientStoreError)


def test_a_head_reads_as_botocore_shapes_it() -> None:
    headers = {
        "Content-Length": "12", "ETag": '"abc"', "Last-Modified": "Sun, 06 Dec 2026 03:00:00 GMT",
        "x-amz-meta-md5": "0" * 32, "X-Amz-Meta-Other": "kept", "Content-Type": "application/json",
        "x-amz-server-side-encryption": "aws:kms",
    }
    raw, pool = raw_with([_Body(200, b"", headers=headers), _Body(404, b"")])
    head = raw.head_object("a b", {"IfMatch": '"abc"'})
    assert head is not None and head["ContentLength"] == 12 and head["ETag"] == '"abc"'
    assert head["Metadata"] == {"md5": "0" * 32, "other": "kept"} and head["ContentType"] == "application/json"
    assert head["ServerSideEncryption"] == "aws:kms" and head["LastModified"].year == 2026
    assert raw.head_object("gone", {}) is None
    assert pool.sent[0][0] == "HEAD" and pool.sent[0][2]["If-Match"] == '"abc"'
