"""What is safe to retry against AWS, and what is AWS's fault: botocore's standard-mode conditions.

The one list of codes of the AWS integration. "Retryable" means what botocore's standard retry
mode means (``botocore/retries/standard.py``): the 14 throttling codes, the transient codes,
HTTP 500/502/503/504, connection and HTTP-client errors (botocore's ``ConnectionError`` and
``HTTPClientError``), errors the service model marks ``retryable``, and STS's
``IDPCommunicationError`` (``botocore/retries/special.py``). Throttling is told apart because it
backs off longer. For a circuit breaker, throttling, 5xx and connection errors are the service's
fault; every other 4xx (``AccessDenied``, ``NoSuchKey``, ``ConditionalCheckFailedException``) is
the caller's.

botocore is imported when a classifier first runs, never when this module is imported.
"""

from __future__ import annotations

from typing import Any

from resilience.exceptions import CircuitOpenError
from resilience.integrations.extras import optional

THROTTLING = "throttling"
TRANSIENT = "transient"
THROTTLING_CODES = frozenset(
    {
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
        "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
        "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
    }
)  # fmt: skip
TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"})
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
SERVICE_TRANSIENT_CODES = frozenset({("sts", "IDPCommunicationError")})
AWS_RETRYABLE_CODES = THROTTLING_CODES | TRANSIENT_CODES


def _connection_error(exc: BaseException | None) -> bool:
    """botocore's transient exceptions: no (complete) answer came back from the endpoint."""
    if exc is None or optional("botocore") is None:  # not installed: the error cannot be one of its
        return False
    from botocore.exceptions import ConnectionError, HTTPClientError

    return isinstance(exc, (ConnectionError, HTTPClientError))


READ_PREFIXES = ("Get", "List", "Describe", "Head", "BatchGet", "Query", "Scan")  # AWS's names for reads
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def _maybe_applied(exc: BaseException | None) -> bool:
    """The request may have reached the service (a read timeout, a connection closed mid-answer),
    unlike botocore's ``ConnectionError`` family (no connection, connect timeout, TLS, proxy)."""
    if exc is None or optional("botocore") is None:
        return False
    from botocore.exceptions import ConnectionError, HTTPClientError

    return isinstance(exc, HTTPClientError) and not isinstance(exc, ConnectionError)


def unapplied(exc: BaseException) -> bool:
    """The failed call applied nothing: nothing was sent (an open breaker, no connection made: the
    opposite of ``_maybe_applied``) or the service refused it unprocessed (throttling). Not after a
    read timeout or a 5xx."""
    if isinstance(exc, CircuitOpenError):
        return True
    code, _ = client_error_details(exc)
    if code is not None:
        return code in THROTTLING_CODES
    if optional("botocore") is None:
        return False
    from botocore.exceptions import ConnectionError

    return isinstance(exc, ConnectionError)


def is_read(operation_model: Any) -> bool:
    """A read by AWS's naming (``Get…``, ``List…``, ``Describe…``, ``Head…``, ``BatchGet…``, ``Query``, ``Scan``)."""
    return bool(getattr(operation_model, "name", "").startswith(READ_PREFIXES))


def read_or_tokened(operation_model: Any) -> bool:
    """A read by AWS's naming (``is_read``), or a write with an input member botocore fills with an
    idempotency token (``ClientToken``)."""
    if is_read(operation_model):
        return True
    members = getattr(getattr(operation_model, "input_shape", None), "members", None) or {}
    return any(member.metadata.get("idempotencyToken") for member in members.values())


def idempotent(operation_model: Any) -> bool:
    """Safe to send twice: an idempotent HTTP method (REST protocols), or ``read_or_tokened``."""
    if operation_model is None:
        return False
    if (getattr(operation_model, "http", None) or {}).get("method", "").upper() in IDEMPOTENT_METHODS:
        return True
    return read_or_tokened(operation_model)


def _modelled(code: str, operation_model: Any) -> str | None:
    """The ``retryable`` trait of the operation's error shape named ``code``, if it has one."""
    for shape in getattr(operation_model, "error_shapes", None) or ():
        trait = shape.metadata.get("retryable")
        if trait is not None and code == (shape.metadata.get("error", {}).get("code") or shape.name):
            return THROTTLING if trait.get("throttling") else TRANSIENT
    return None


def retry_kind(
    code: str | None,
    status: int | None,
    exc: BaseException | None = None,
    operation_model: Any = None,
) -> str | None:
    """``"throttling"``, ``"transient"`` or None (not retryable) for one failed attempt: its error
    code and HTTP status, or the exception raised instead of a response. Unlike botocore, an error
    after which the request may have been applied (a read timeout) is retried only for an
    ``idempotent`` operation: never a second ``SendMessage`` or ``Publish``."""
    if _maybe_applied(exc) and not idempotent(operation_model):
        return None
    if code in THROTTLING_CODES:
        return THROTTLING
    if code is not None and operation_model is not None:
        modelled = _modelled(code, operation_model)
        if modelled is not None:
            return modelled
        service = getattr(getattr(operation_model, "service_model", None), "service_name", None)
        if (service, code) in SERVICE_TRANSIENT_CODES:
            return TRANSIENT
    if code in TRANSIENT_CODES or status in TRANSIENT_STATUS or _connection_error(exc):
        return TRANSIENT
    return None


def service_fault(code: str | None, status: int | None, exc: BaseException | None = None) -> bool:
    """Whether a failed call counts against the service's breaker: 5xx, throttling and connection
    errors do; any other 4xx is the caller's doing (a missing key, a denied action)."""
    return (status is not None and status >= 500) or code in THROTTLING_CODES or _connection_error(exc)


def client_error_details(exc: BaseException) -> tuple[str | None, int | None]:
    """``(error code, HTTP status)`` of a botocore ``ClientError`` (or anything with its ``response``)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None, None
    return response.get("Error", {}).get("Code"), response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def aws_transient(exc: BaseException) -> bool:
    """The ``aws`` policy's classifier: botocore's standard-mode retryable errors (see the module)."""
    code, status = client_error_details(exc)
    return retry_kind(code, status, exc) is not None
