"""The floor: the least any no-op sync can cost, in one minimal process.

Stat every local file (os.scandir) and list the bucket prefix with raw
ListObjectsV2 GETs, signed here with SigV4 and parsed with ElementTree: no
boto3, no botocore. Every no-op figure in the table is also shown as a multiple
of this.

    python -m bench.floor ROOT ENDPOINT BUCKET PREFIX   (credentials from AWS_* variables)
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import os
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def stat_tree(root: str) -> int:
    count = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat()
                    count += 1
    return count


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="-_.~")


def signed_headers(
    host: str, path: str, query: dict[str, str], access: str, secret: str, region: str
) -> dict[str, str]:
    """SigV4 headers for a GET with an empty body."""
    now = datetime.datetime.now(datetime.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
    headers = {"host": host, "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        ["GET", path, canonical_query, *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, _EMPTY_SHA256]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(_sign(_sign(_sign(f"AWS4{secret}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return headers


def list_prefix(endpoint: str, bucket: str, prefix: str, access: str, secret: str, region: str) -> int:
    """Count the keys under `prefix`, page by page over one kept-alive connection."""
    url = urllib.parse.urlsplit(endpoint)
    conn = http.client.HTTPConnection(url.netloc, timeout=60)
    path = f"/{bucket}"
    count = 0
    token: str | None = None
    while True:
        query = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
        if token:
            query["continuation-token"] = token
        headers = signed_headers(url.netloc, path, query, access, secret, region)
        conn.request("GET", f"{path}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}", headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"list failed: {response.status} {body[:300]!r}")
        root = ET.fromstring(body)
        for item in root.iter(f"{_NS}Contents"):
            # What a sync needs of each object: key, size and ETag.
            item.findtext(f"{_NS}Key"), item.findtext(f"{_NS}Size"), item.findtext(f"{_NS}ETag")
            count += 1
        if root.findtext(f"{_NS}IsTruncated") != "true":
            return count
        token = root.findtext(f"{_NS}NextContinuationToken")


def main(argv: list[str]) -> int:
    root, endpoint, bucket, prefix = argv
    start = time.perf_counter()
    files = stat_tree(root)
    objects = list_prefix(
        endpoint,
        bucket,
        prefix,
        os.environ["AWS_ACCESS_KEY_ID"],
        os.environ["AWS_SECRET_ACCESS_KEY"],
        os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    print(f"{files} {objects} {time.perf_counter() - start:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
