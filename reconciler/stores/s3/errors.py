"""S3's failures read in one place: the status and code of a refusal, whichever transport met it, and the
StoreError each means.

botocore is never imported here to classify an error: an exception can only be one of botocore's once
botocore has been imported, so the checks for its classes run only then, and a warm apply on the direct
transport (whose refusals are `S3Refusal`s) never loads it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from reconciler.stores.base import ObjectChanged, PermanentStoreError, StoreError, TransientStoreError
from reconciler.stores.s3.direct.http_pool import NETWORK_ERRORS, DeadlineExceeded
from reconciler.stores.s3.lazy import lazy

if TYPE_CHECKING:
    import botocore.exceptions
else:
    botocore = lazy("botocore")

T = TypeVar("T")

TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
        "502",
        "504",
    }
)
CHANGED_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
TIMEOUT = "Timeout"  # the code of a request that met its connect or read deadline (stores/s3/deadlines.py)


class S3Refusal(Exception):
    """The server answered with an error status (the direct transport's ClientError): its status, S3's code and
    message from the XML body (the status as code when there is none, as for a HEAD), and the request ids."""

    def __init__(
        self, operation: str, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{operation}: {status} {code} {message}".strip())
        self.operation, self.status, self.code, self.message = operation, status, code, message
        self.headers: Mapping[str, str] = headers or {}


def _botocore_loaded() -> bool:
    return "botocore.exceptions" in sys.modules


def is_connect_timeout(exc: BaseException) -> bool:
    return _botocore_loaded() and isinstance(exc, botocore.exceptions.ConnectTimeoutError)


def is_timeout(exc: BaseException) -> bool:
    """A request that met a deadline: the endpoint is there and silent (or unreachable), not throttling."""
    if isinstance(exc, DeadlineExceeded):
        return True
    return _botocore_loaded() and isinstance(
        exc, botocore.exceptions.ConnectTimeoutError | botocore.exceptions.ReadTimeoutError
    )


def _network_errors() -> tuple[type[Exception], ...]:
    return (
        botocore.exceptions.ConnectionError,
        botocore.exceptions.HTTPClientError,
        botocore.exceptions.ReadTimeoutError,
        botocore.exceptions.ResponseStreamingError,
        botocore.exceptions.IncompleteReadError,
    )


def _client_error(exc: BaseException) -> botocore.exceptions.ClientError | None:
    if _botocore_loaded() and isinstance(exc, botocore.exceptions.ClientError):
        return exc
    return None


def status_of(exc: BaseException) -> int:
    """The HTTP status of a refusal (an S3Refusal or a botocore ClientError); 0 for anything else."""
    if isinstance(exc, S3Refusal):
        return exc.status
    refused = _client_error(exc)
    return 0 if refused is None else int(refused.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def code_of(exc: BaseException) -> str:
    if isinstance(exc, S3Refusal):
        return exc.code
    refused = _client_error(exc)
    return "" if refused is None else str(refused.response.get("Error", {}).get("Code", ""))


def message_of(exc: BaseException) -> str:
    if isinstance(exc, S3Refusal):
        return exc.message
    refused = _client_error(exc)
    return "" if refused is None else str(refused.response.get("Error", {}).get("Message", ""))


def request_ids(exc: BaseException) -> tuple[str, str]:
    """(request id, host id) of a refusal, for the provider's support: debug logs only."""
    if isinstance(exc, S3Refusal):
        return exc.headers.get("x-amz-request-id", ""), exc.headers.get("x-amz-id-2", "")
    refused = _client_error(exc)
    meta = {} if refused is None else refused.response.get("ResponseMetadata", {})
    return str(meta.get("RequestId", "")), str(meta.get("HostId", ""))


def is_missing(exc: BaseException) -> bool:
    return status_of(exc) == 404


def no_such_upload(exc: BaseException) -> bool:
    """The upload is not in progress (any more): completed, aborted, or never known to the server."""
    return code_of(exc) == "NoSuchUpload" or is_missing(exc)


def copy_too_large(exc: StoreError) -> bool:
    """AWS refuses CopyObject above 5 GiB with 400 InvalidRequest; some S3-compatible servers say EntityTooLarge."""
    text = str(exc).lower()
    return exc.code == "EntityTooLarge" or (exc.code == "InvalidRequest" and "copy source is larger" in text)


def translate(exc: Exception, *, key: str, action: str) -> StoreError:
    """Turn a refusal or a botocore failure into a StoreError the executor can classify."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, S3Refusal) or _client_error(exc) is not None:
        code, status = code_of(exc), status_of(exc)
        message = message_of(exc) or code
        text = f"{action} {key}: {code or status} {message}".strip()
        if code in CHANGED_CODES or status == 412:
            return ObjectChanged(
                f"{action} {key}: the object changed since the plan was made (412 {code}); re-run pixel plan",
                code=code or "412",
                key=key,
            )
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientStoreError(text, code=code or str(status), key=key)
        return PermanentStoreError(text, code=code or str(status), key=key)
    if not _botocore_loaded():
        return PermanentStoreError(f"{action} {key}: {type(exc).__name__}: {exc}", key=key)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return PermanentStoreError(
            f"{action} {key}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)",
            code="NoCredentials",
            key=key,
        )
    if isinstance(exc, botocore.exceptions.ConnectTimeoutError | botocore.exceptions.ReadTimeoutError):
        # botocore's message names the endpoint URL; which deadline it was, and where it is set, is ours to say.
        setting = "connect_timeout, PIXEL_S3_CONNECT_TIMEOUT" if is_connect_timeout(exc) else (
            "read_timeout, PIXEL_S3_READ_TIMEOUT"
        )
        return TransientStoreError(f"{action} {key}: {exc} ({setting})", code=TIMEOUT, key=key)
    if isinstance(exc, _network_errors()):
        return TransientStoreError(f"{action} {key}: {type(exc).__name__}: {exc}", code="Network", key=key)
    return PermanentStoreError(f"{action} {key}: {type(exc).__name__}: {exc}", key=key)


def call(action: str, key: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(...)` with its failure as a StoreError."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise translate(exc, key=key, action=action) from exc


def raw_call(action: str, key: str, fn: Callable[..., T], *args: Any) -> T:
    """`call` for the direct path, whose dropped connections are the standard library's errors, not botocore's."""
    try:
        return fn(*args)
    except Exception as exc:
        raise translate_raw(exc, key=key, action=action) from exc


def translate_raw(exc: Exception, *, key: str, action: str) -> StoreError:
    """`translate` for an error of the direct path: the standard library's network errors are transient."""
    if isinstance(exc, DeadlineExceeded):
        return TransientStoreError(f"{action} {key}: {exc}", code=TIMEOUT, key=key)
    if isinstance(exc, NETWORK_ERRORS):
        return TransientStoreError(f"{action} {key}: {type(exc).__name__}: {exc}", code="Network", key=key)
    return translate(exc, key=key, action=action)
