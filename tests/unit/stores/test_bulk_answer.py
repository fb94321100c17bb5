"""The small-upload lane's HTTP/1.1 answer parser (stores/s3/direct/bulk.py `_Answer`), read from bytes in any split.

A non-blocking socket hands an answer over in whatever pieces the kernel had: the parser must read the same
status, headers and body whether the bytes come whole, one at a time, or cut anywhere in between, and must
refuse what is not an answer rather than hang on it or hand back a body it made up.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.stores.s3.direct.bulk import BadResponse, _Answer

FRAMING = {"content-length", "transfer-encoding", "connection"}


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    framing: str  # "sized" | "chunked" | "close" (said so) | "bare" (no length, no word: to the close all the same)
    chunks: tuple[int, ...]  # where a chunked body is cut into chunks
    interim: bool  # a 100 Continue first

    def wire(self) -> bytes:
        head = [f"HTTP/1.1 {self.status} {self.reason}".rstrip()]
        if self.interim:
            head = ["HTTP/1.1 100 Continue", "", *head]
        head += [f"{name}: {value}" for name, value in self.headers]
        if self.framing == "sized":
            head.append(f"Content-Length: {len(self.body)}")
            payload = self.body
        elif self.framing == "chunked":
            head.append("Transfer-Encoding: chunked")
            cuts = sorted({0, len(self.body), *(c % (len(self.body) + 1) for c in self.chunks)})
            pieces = [self.body[a:b] for a, b in pairwise(cuts) if b > a]
            payload = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\nTrailer: t\r\n\r\n"
        else:
            if self.framing == "close":
                head.append("Connection: close")
            payload = self.body
        return ("\r\n".join(head) + "\r\n\r\n").encode("iso-8859-1") + payload


names = st.text(string.ascii_letters + "-", min_size=1, max_size=12).filter(lambda n: n.lower() not in FRAMING)
values = st.text(string.ascii_letters + string.digits + " ;,=/\"-", max_size=30).map(str.strip)
replies = st.builds(
    Reply,
    status=st.integers(200, 599),
    reason=st.text(string.ascii_letters + " ", max_size=20).map(str.strip),
    headers=st.dictionaries(names, values, max_size=6).map(
        lambda d: tuple({k.lower(): (k, v) for k, v in d.items()}.values())
    ),
    body=st.binary(max_size=300),
    framing=st.sampled_from(["sized", "chunked", "close", "bare"]),
    chunks=st.lists(st.integers(0, 300), max_size=5).map(tuple),
    interim=st.booleans(),
)


def read(pieces: list[bytes], *, closes: bool) -> _Answer:
    """Feed `pieces` in order; the answer must be complete exactly at the end (or at the close)."""
    answer = _Answer()
    for i, piece in enumerate(pieces):
        complete = answer.feed(piece)
        assert complete == (i == len(pieces) - 1 and not closes), (i, len(pieces))
    if closes:
        assert answer.feed(b"") is True
    return answer


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} - {0, len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


@given(replies, st.lists(st.integers(0, 10_000), max_size=40))
def test_any_split_of_an_answer_reads_as_the_answer_sent(reply: Reply, cuts: list[int]) -> None:
    data = reply.wire()
    closes = reply.framing in ("close", "bare")
    for pieces in (split(data, cuts), [data], [data[i : i + 1] for i in range(len(data))]):
        answer = read(pieces, closes=closes)
        assert (answer.status, answer.reason, bytes(answer.body)) == (reply.status, reply.reason, reply.body)
        assert answer.headers is not None
        assert {k.lower(): v for k, v in answer.headers.items() if k.lower() not in FRAMING} == {
            k.lower(): v for k, v in reply.headers
        }
        assert answer.closes == closes
        assert not answer.buffer


@given(replies, st.binary(min_size=1, max_size=40))
def test_bytes_past_a_framed_answer_stay_in_the_buffer_not_the_body(reply: Reply, extra: bytes) -> None:
    if reply.framing in ("close", "bare"):
        return
    answer = _Answer()
    assert answer.feed(reply.wire() + extra) is True
    assert bytes(answer.body) == reply.body
    assert bytes(answer.buffer) == extra  # the endpoint closes such a connection: nobody asked for these


@given(replies, st.integers(0, 10_000))
def test_a_close_before_the_answer_ends_is_a_dropped_connection(reply: Reply, cut: int) -> None:
    data = reply.wire()
    if reply.framing in ("close", "bare"):
        data = data[: data.index(b"\r\n\r\n", data.index(b"HTTP/1.1 %d" % reply.status)) + 3]
    cut = cut % len(data)  # short of the whole answer
    answer = _Answer()
    if cut:
        assert answer.feed(data[:cut]) is False
    with pytest.raises(ConnectionResetError):
        answer.feed(b"")


MALFORMED = [
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_what_is_not_an_http_answer_is_refused(raw: bytes) -> None:
    with pytest.raises(BadResponse):
        _Answer().feed(raw)


def test_a_header_block_that_never_ends_is_refused_not_buffered_for_ever() -> None:
    answer = _Answer()
    assert answer.feed(b"HTTP/1.1 200 OK\r\n") is False
    with pytest.raises(BadResponse):
        for _ in range(100):
            answer.feed(b"X-Filler: " + b"a" * 1000 + b"\r\n")
