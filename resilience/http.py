"""Outbound HTTP with ``requests``: a breaker per host, the ``http`` retry policy, timeouts bounded by
the current deadline, and the remaining budget passed on in ``X-Request-Timeout``.

    from resilience.http import ResilientSession
    session = ResilientSession()
    session.get("https://rates.example.com/eur")   # a requests.Response, as always

Server errors (5xx) count as breaker failures; 429/502/503/504 are retried for idempotent methods
only; when retries are spent the last response is returned, as plain ``requests`` would.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from .classifiers import HTTP_RETRYABLE_STATUS
from .core.deadline import bounded, remaining
from .decorators import circuit_breaker
from .exceptions import DeadlineExceeded
from .retry import retry

TIMEOUT_HEADER = "X-Request-Timeout"


class _StatusFailure(requests.HTTPError):
    """Raised inside the breaker for 5xx/429 so the breaker and retry policy see it; unwrapped after."""


class ResilientSession(requests.Session):
    def __init__(
        self, *, policy: str = "http", timeout: float = 10.0, breaker_prefix: str = "http", propagate_deadline: bool = True
    ) -> None:
        super().__init__()
        self.policy, self.default_timeout = policy, timeout
        self.breaker_prefix, self.propagate_deadline = breaker_prefix, propagate_deadline

    def breaker_name(self, url: str) -> str:
        """One breaker per scheme://host:port, e.g. ``http:https://api.example.com:443``."""
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
        return f"{self.breaker_prefix}:{parts.scheme}://{(parts.hostname or '')[:150]}:{port}"

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        breaker = circuit_breaker(self.breaker_name(str(url)))
        retrying = retry(self.policy)
        per_attempt = retrying.retrying.policy.attempt_timeout
        timeout = kwargs.pop("timeout", None) or self.default_timeout
        if per_attempt is not None:
            timeout = min(timeout, per_attempt)
        headers = dict(kwargs.pop("headers", None) or {})

        def attempt() -> requests.Response:
            left = remaining()
            if left is not None and left <= 0:
                raise DeadlineExceeded("deadline passed before the HTTP request was sent")
            if self.propagate_deadline and left is not None:
                headers[TIMEOUT_HEADER] = f"{left:.3f}"
            with breaker:
                try:
                    response = super(ResilientSession, self).request(
                        method, url, *args, timeout=bounded(timeout), headers=headers, **kwargs
                    )
                except requests.Timeout as exc:
                    if remaining() == 0.0:
                        raise DeadlineExceeded("deadline passed during the HTTP request") from exc
                    raise
                if response.status_code >= 500 or response.status_code in HTTP_RETRYABLE_STATUS:
                    raise _StatusFailure(f"{response.status_code} from {self.breaker_name(str(url))}", response=response)
                return response

        try:
            return retrying.call(attempt)  # type: ignore[no-any-return]
        except _StatusFailure as exc:
            return exc.response  # type: ignore[return-value]
