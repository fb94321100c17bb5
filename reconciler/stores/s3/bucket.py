"""The bucket's side of an S3 store: whether it has answered, and what its refusals mean for the one running
pixel. store.py checks the bucket (HeadBucket, or the first listing page where it checks on first use); what a
403 means, and the one answer a listing waits for (the bucket's default encryption), live here."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from reconciler.logs import get_logger
from reconciler.stores.base import PermanentStoreError
from reconciler.stores.s3.errors import code_of, request_ids, status_of
from reconciler.stores.s3.transport import Transport, list_params

T = TypeVar("T")

# What a 403's S3 error code means for the one running pixel, and what to check.
DENIED = {
    "SignatureDoesNotMatch": "the request signature does not match: the secret access key is wrong for this access "
    "key ID (check AWS_SECRET_ACCESS_KEY, the profile's aws_secret_access_key or the store's credentials_env), "
    "or the endpoint or region is not the one the keys belong to",
    "InvalidAccessKeyId": "this endpoint does not know the access key ID (check AWS_ACCESS_KEY_ID, the profile's "
    "aws_access_key_id or the store's credentials_env, and that the endpoint is the right one)",
    "AccessDenied": "the credentials were accepted but may not use this bucket (check the IAM or bucket policy "
    "grants s3:ListBucket, s3:GetObject and s3:PutObject on it to this identity)",
    "RequestTimeTooSkewed": "this machine's clock is too far from the server's: set it right (NTP)",
    "ExpiredToken": "the session token has expired: refresh the credentials (AWS_SESSION_TOKEN, SSO login)",
}


class BucketCheck:
    """Whether the bucket has answered, shared by a store and its `for_apply` copies (one check for all)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # one HeadBucket at a time, however many requests are waiting on it
        self.on_first_use = False  # set by check_on_first_use: the first request checks the bucket
        self.passed = False  # the bucket answered: HeadBucket 200, or a listing page
        self.encryption: Future[frozenset[str] | None] | None = None  # asked beside the first listing page
        self.asked_by = 0  # the process that asked it


def denied(transport: Transport, store: str, bucket: str, endpoint: str | None) -> PermanentStoreError:
    """A 403 on HEAD bucket, which has no body to say why: one listing request asks again for S3's error
    code, and the message says what to check for it. The request id (for the provider's support) and the
    code go to the debug log (`-v`); no key, secret or signature is ever part of either."""
    where = f'store "{store}": bucket "{bucket}" at {endpoint or "the AWS endpoint"}'
    code = ""
    log = get_logger("pixel.s3")
    try:
        transport.list_page("", list_params(max_keys=1))
    except Exception as exc:
        if status_of(exc):
            code = code_of(exc)
            request_id, host_id = request_ids(exc)
            log.debug("access denied", store=store, bucket=bucket, code=code or str(status_of(exc)),
                      request_id=request_id, host_id=host_id)
        else:  # unreachable now, say: the 403 is still the answer to give
            log.debug("access denied", store=store, bucket=bucket, probe=repr(exc))
    code = code or "AccessDenied"
    why = DENIED.get(code, DENIED["AccessDenied"])
    return PermanentStoreError(f"{where}: denied (403 {code}): {why}", code=code)


def in_background(call: Callable[[], T]) -> Future[T]:
    """`call()` on a daemon thread: an endpoint that never answers must not hold the process at exit, as a
    pool's worker would (concurrent.futures joins its threads then)."""
    answer: Future[T] = Future()

    def run() -> None:
        try:
            answer.set_result(call())
        except BaseException as exc:  # handed to whoever waits on the answer, raised there
            answer.set_exception(exc)

    threading.Thread(target=run, name="pixel-encryption", daemon=True).start()
    return answer
