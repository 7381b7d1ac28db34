"""What is safe to retry over HTTP: connect errors always, throttling and 5xx only for idempotent methods.

``requests`` and urllib3 are imported when a classifier first runs, never when this module is imported.
"""

from __future__ import annotations

from typing import Any

from resilience.integrations.extras import optional

HTTP_RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
HTTP_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


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
