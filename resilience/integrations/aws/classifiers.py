"""What is safe to retry against AWS: botocore throttling and 5xx codes, connection errors before sending.

botocore is imported when the classifier first runs, never when this module is imported.
"""

from __future__ import annotations

from resilience.integrations.extras import optional

AWS_RETRYABLE_CODES = frozenset(
    {
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
        "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
        "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException", "InternalError", "ServiceUnavailable",
        "InternalServerError", "InternalFailure", "RequestTimeout", "RequestTimeoutException",
    }
)  # fmt: skip


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
