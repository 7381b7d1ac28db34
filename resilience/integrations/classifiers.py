"""What is safe to retry, per dependency. Each classifier answers "is this error transient?";
the adapters add what only they know (is the statement a read, is the HTTP method idempotent)."""

from __future__ import annotations

from typing import Any

from resilience.integrations.extras import optional

# Postgres SQLSTATEs: connection exceptions (class 08), server shutting down or starting up.
PG_CONNECTION_LOST = frozenset({"57P01", "57P02", "57P03"})
PG_TOO_MANY_CONNECTIONS = "53300"  # safe only before any statement ran (at connect)
PG_TRANSACTION_CONFLICT = frozenset({"40001", "40P01"})  # serialization failure, deadlock: re-run the whole transaction
HTTP_RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
HTTP_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
AWS_RETRYABLE_CODES = frozenset(
    {
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
        "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
        "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException", "InternalError", "ServiceUnavailable",
        "InternalServerError", "InternalFailure", "RequestTimeout", "RequestTimeoutException",
    }
)  # fmt: skip


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, also when Django wrapped it (``__cause__``)."""
    for err in (exc, exc.__cause__):
        code = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def _is_db_error(exc: BaseException) -> bool:
    try:
        from django.db import Error as DjangoDbError
    except ImportError:  # pragma: no cover
        DjangoDbError = ()  # type: ignore[assignment,misc]  # noqa: N806
    import psycopg

    return isinstance(exc, (psycopg.Error, DjangoDbError))


def postgres_connection_lost(exc: BaseException) -> bool:
    """The connection broke or the server is restarting: nothing of the statement can have committed
    on its own, so a read outside a transaction may run again on a new connection."""
    if not _is_db_error(exc):
        return False
    code = sqlstate(exc)
    if code is None:  # psycopg raises OperationalError without a code when the socket dies
        import psycopg

        cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
        return isinstance(cause, psycopg.OperationalError) and not isinstance(cause, psycopg.errors.QueryCanceled)
    return code.startswith("08") or code in PG_CONNECTION_LOST


def postgres_connect_refused(exc: BaseException) -> bool:
    """Connection lost, or too many connections (only meaningful when raised while connecting)."""
    return postgres_connection_lost(exc) or (_is_db_error(exc) and sqlstate(exc) == PG_TOO_MANY_CONNECTIONS)


def postgres_transaction_conflict(exc: BaseException) -> bool:
    """Serialization failure or deadlock: retry by re-running the whole transaction, never one statement."""
    return _is_db_error(exc) and sqlstate(exc) in PG_TRANSACTION_CONFLICT


def redis_transient(exc: BaseException) -> bool:
    """Connection and timeout errors; the Redis adapter retries them for idempotent commands only."""
    import redis

    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError))


def http_transient(exc: BaseException) -> bool:
    """Connect errors (the request never left) always; 429/502/503/504 only for idempotent methods."""
    requests = optional("requests")
    if requests is None:  # not installed: the error cannot be one of its
        return False
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and _never_sent(exc):
        return True
    response: Any = getattr(exc, "response", None)
    request: Any = getattr(exc, "request", None) or getattr(response, "request", None)
    method = str(getattr(request, "method", "") or "").upper()
    status = getattr(response, "status_code", None)
    return status in HTTP_RETRYABLE_STATUS and method in HTTP_IDEMPOTENT_METHODS


def _never_sent(exc: BaseException) -> bool:
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    seen: BaseException | None = exc
    for _ in range(6):  # walk requests -> urllib3 MaxRetryError -> reason
        if seen is None:
            return False
        if isinstance(seen, (NewConnectionError, NameResolutionError)):
            return True
        reason = getattr(seen, "reason", None)
        seen = (
            reason
            if isinstance(reason, BaseException)
            else (seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None)
        )
    return False


def aws_transient(exc: BaseException) -> bool:
    """botocore throttling and 5xx error codes, and connection errors before the request was sent."""
    if optional("botocore") is None:  # not installed: the error cannot be one of its
        return False
    from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return error.get("Code") in AWS_RETRYABLE_CODES or status in (500, 502, 503, 504)
    return False


CLASSIFIERS = {
    "default": None,  # resilience.core.retry.transient
    "postgres": postgres_connection_lost,
    "postgres_transaction": postgres_transaction_conflict,
    "postgres_connect": postgres_connect_refused,
    "redis": redis_transient,
    "http": http_transient,
    "aws": aws_transient,
}
