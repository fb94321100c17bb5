"""S3's failures read in one place: the status and code of any botocore error, and the StoreError each means."""

from __future__ import annotations

from collections.abc import Callable
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


def is_connect_timeout(exc: BaseException) -> bool:
    return isinstance(exc, botocore.exceptions.ConnectTimeoutError)


def is_timeout(exc: BaseException) -> bool:
    """A request that met a deadline: the endpoint is there and silent (or unreachable), not throttling."""
    return isinstance(
        exc, DeadlineExceeded | botocore.exceptions.ConnectTimeoutError | botocore.exceptions.ReadTimeoutError
    )


def _network_errors() -> tuple[type[Exception], ...]:
    return (
        botocore.exceptions.ConnectionError,
        botocore.exceptions.HTTPClientError,
        botocore.exceptions.ReadTimeoutError,
        botocore.exceptions.ResponseStreamingError,
        botocore.exceptions.IncompleteReadError,
    )


def status_of(exc: BaseException) -> int:
    """The HTTP status of a botocore ClientError (the raw path raises those too); 0 for anything else."""
    if not isinstance(exc, botocore.exceptions.ClientError):
        return 0
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def code_of(exc: BaseException) -> str:
    if not isinstance(exc, botocore.exceptions.ClientError):
        return ""
    return str(exc.response.get("Error", {}).get("Code", ""))


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
    """Turn a botocore failure into a StoreError the executor can classify."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code, status = code_of(exc), status_of(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or code
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
    if isinstance(exc, StoreError):
        return exc
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
