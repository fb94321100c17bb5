"""botocore tuned for pixel's traffic: a fast ListObjectsV2 parser, no 100-continue on small bodies.

Both hook into botocore's own extension points (the session's parser factory, the
client's event system), so signing, the credential chain and moto's mocks are
untouched. A third hook makes botocore resend a request only after a dropped
connection, once: the retrying with backoff is stores/retry.py's.

A no-op plan is mostly listing. botocore turns each page into dicts through
its generic shape walker and parses every LastModified with dateutil: for
10,000 keys that is about 3 s of CPU, against 0.1 s for ElementTree alone.
This parser reads ListObjectsV2 pages straight off the XML and hands every
other operation to botocore's own parser; the result has the same shape the
paginator and botocore's key-decoding handler expect.

botocore sends every S3 body with `Expect: 100-continue` (it turns bytes into
a file object first), which costs a round trip per object: for thousands of
small uploads that is a large share of the time. Bodies up to
`SMALL_BODY_NO_EXPECT` go without it.
"""

from __future__ import annotations

import datetime
from typing import Any

from botocore.exceptions import ConnectionError, ConnectTimeoutError, HTTPClientError, ReadTimeoutError
from botocore.parsers import ResponseParserFactory, RestXMLParser
from botocore.utils import parse_timestamp

from reconciler.stores.s3.listing import parse_list_objects_v2

SMALL_BODY_NO_EXPECT = 1024 * 1024


def fast_timestamp(text: str) -> datetime.datetime:
    """ISO 8601 (listings) without dateutil; anything else (HTTP dates in headers) the usual way."""
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return parse_timestamp(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


class FastListParser(RestXMLParser):
    def _do_parse(self, response: dict[str, Any], shape: Any) -> dict[str, Any]:
        if shape is not None and shape.name == "ListObjectsV2Output" and response.get("body"):
            parsed = parse_list_objects_v2(response["body"], fast_timestamp)
            parsed["ResponseMetadata"] = self._populate_response_metadata(response)  # type: ignore[attr-defined]
            return parsed
        return super()._do_parse(response, shape)  # type: ignore[misc,no-any-return]


class FastParserFactory(ResponseParserFactory):
    """botocore's factory, but S3's protocol (rest-xml) gets the fast listing parser."""

    def __init__(self) -> None:
        super().__init__()
        self.set_parser_defaults(timestamp_parser=fast_timestamp)

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "rest-xml":
            return FastListParser(timestamp_parser=fast_timestamp)
        return super().create_parser(protocol_name)


def _drop_expect_for_small_bodies(model: Any, params: dict[str, Any], **kwargs: Any) -> None:
    headers = params.get("headers", {})
    if "Expect" not in headers:
        return
    try:
        length = int(headers.get("Content-Length", ""))
    except ValueError:
        return
    if length <= SMALL_BODY_NO_EXPECT:
        del headers["Expect"]


def _resend_a_dropped_connection(
    attempts: int, caught_exception: Exception | None = None, **kwargs: Any
) -> float | None:
    """botocore's retry decision (`needs-retry`): send once more, at once, after a dropped connection; else
    never. Throttling and 5xx go up as TransientStoreError to the one retry layer (stores/retry.py).

    botocore's own retry modes cannot tell the two apart: its client is configured for no retries at all
    (`total_max_attempts` 1, so its handler says None) and this handler, registered after it, decides.
    """
    # A deadline met is not a dropped connection: the server is there and silent, and waiting it out twice
    # would double every wait (ReadTimeoutError is an HTTPClientError, ConnectTimeoutError a ConnectionError).
    if isinstance(caught_exception, ConnectTimeoutError | ReadTimeoutError):
        return None
    if attempts == 1 and isinstance(caught_exception, ConnectionError | HTTPClientError):
        return 0.0
    return None


def tune_client(client: Any) -> None:
    """Register pixel's per-request tweaks on a botocore S3 client."""
    # Same event as botocore's add_expect_header and registered after it, so it runs after it.
    client.meta.events.register("before-call.s3", _drop_expect_for_small_bodies)
    client.meta.events.register("needs-retry.s3", _resend_a_dropped_connection)
