"""The lane's answer parser (stores/s3/direct/bulk.py `_Answer`) refuses malformed sizes and status codes.

Found by the lane's tests, fixed after: `Content-Length: -3` had been read as a complete answer whose body
was the received bytes minus their last three; a negative chunk size went backwards (`-6` before
`0\\r\\n\\r\\n` deleted nothing and looped for ever, the body growing); a status code of latin-1 digits that
`str.isdigit` accepts but `int` does not raised ValueError out of `feed`, not an OSError, so the executor's
loop died instead of failing that one request.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.stores.s3.direct.bulk import _Answer


def outcome(raw: bytes) -> tuple[str, bytes]:
    """What the parser makes of `raw` then a close: refused (an OSError), or the body it completed with."""
    answer = _Answer()
    try:
        if not answer.feed(raw):
            answer.feed(b"")
    except OSError:
        return "refused", b""
    return "answer", bytes(answer.body)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\nabcdef",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\n0\r\n\r\nxx",
        b"HTTP/1.1 \xb2 OK\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_a_bad_size_or_status_is_refused_as_a_bad_response(raw: bytes) -> None:
    assert outcome(raw)[0] == "refused"


def test_a_negative_chunk_size_does_not_loop_for_ever() -> None:
    # In a child: the bug spins, growing its body, and a thread here could not be stopped.
    script = (
        "from reconciler.stores.s3.direct.bulk import _Answer, BadResponse\n"
        "try:\n"
        "    _Answer().feed(b'HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n-6\\r\\n0\\r\\n\\r\\n')\n"
        "except BadResponse:\n"
        "    pass\n"
    )
    try:
        subprocess.run([sys.executable, "-c", script], timeout=20, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("_Answer.feed never returned on a chunk size of -6")


LATIN1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF)
LENGTHS = st.one_of(st.integers(-20, 20).map(str), st.text(LATIN1, max_size=6))


@given(LENGTHS, st.binary(max_size=20))
def test_a_content_length_is_a_decimal_count_or_the_answer_is_refused(length: str, payload: bytes) -> None:
    raw = f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode("iso-8859-1") + payload
    kind, body = outcome(raw)
    if kind == "answer":
        value = length.strip(" \t")
        assert value.isascii() and value.isdigit(), repr(length)
        assert body == payload[: int(value)]


@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), min_size=1, max_size=6))
def test_any_status_code_text_is_a_status_or_refused_never_another_error(code: str) -> None:
    outcome(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode("iso-8859-1"))
