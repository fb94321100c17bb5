"""pixel's SigV4 signer gives botocore's signature for the requests pixel sends directly."""

from __future__ import annotations

import datetime

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from reconciler.stores.s3.direct.sigv4 import sign

ACCESS, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

CASES = [
    (
        "PUT",
        "http://127.0.0.1:8333/pixel-data/datasets/gdrive/raw/with%20space/%C3%BCn%C3%AF%2Bplus.jsonl",
        {"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg==", "x-amz-meta-md5": "d41d8cd98f00b204e9800998ecf8427e"},
        b"",
        None,
    ),
    (
        "PUT",
        "https://pixel-data.s3.eu-west-3.amazonaws.com/a/b.json",
        {
            "Content-MD5": "XUFAKrxLKna5cZ2REBfFkg==",
            "x-amz-meta-md5": "5d41402abc4b2a76b9719d911017c592",
            "x-amz-checksum-crc64nvme": "AAAAAAAAAAA=",
            "x-amz-sdk-checksum-algorithm": "CRC64NVME",
        },
        b"hello",
        "session-token/with+odd=chars",
    ),
    (  # UploadPart as DirectTransport.upload_part sends it: an AWS-shaped upload id in the query, the payload unsigned
        "PUT",
        "https://pixel-data.s3.eu-west-3.amazonaws.com/big/shard%20000.bin?partNumber=12&uploadId="
        "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA.x_y-z~%2Bq",
        {"x-amz-checksum-crc64nvme": "AAAAAAAAAAA=", "x-amz-sdk-checksum-algorithm": "CRC64NVME"},
        b"part bytes",
        None,
    ),
    (
        "GET",
        "http://127.0.0.1:8333/pixel-data?continuation-token=1%2F2%2B3&encoding-type=url&list-type=2&prefix=d%2Fr%2F",
        {},
        b"",
        None,
    ),
]


@pytest.mark.parametrize(("method", "url", "headers", "body", "token"), CASES)
def test_signature_matches_botocore(
    method: str, url: str, headers: dict[str, str], body: bytes, token: str | None
) -> None:
    # Only headers both sign (botocore signs every header it is given; pixel signs host, Content-MD5, x-amz-*).
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    S3SigV4Auth(Credentials(ACCESS, SECRET, token), "s3", "eu-west-3").add_auth(request)
    theirs = dict(request.headers.items())
    when = datetime.datetime.strptime(theirs["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    ours = sign(
        method,
        url,
        headers,
        payload_sha256=theirs["X-Amz-Content-SHA256"],
        access_key=ACCESS,
        secret_key=SECRET,
        token=token,
        region="eu-west-3",
        now=when,
    )
    assert ours["Authorization"] == theirs["Authorization"]
    assert ours.get("X-Amz-Security-Token") == theirs.get("X-Amz-Security-Token") == token
