"""Outbound HTTP with ``requests``: a breaker per host, the ``http`` retry policy, timeouts bounded by
the current deadline, and the remaining budget passed on in ``X-Request-Timeout``.

    from resilience.integrations.http.session import ResilientSession
    session = ResilientSession()
    session.get("https://rates.example.com/eur")   # a requests.Response, as always

Server errors (5xx) count as breaker failures; 429/502/503/504 are retried for idempotent methods
only; when retries are spent the last response is returned, as plain ``requests`` would.

Hosts may come from client input, so a process makes at most ``max_host_breakers`` host breakers
per ``breaker_prefix`` (default ``RESILIENCE["HTTP_MAX_HOST_BREAKERS"]``, else 100); every further
host shares ``<prefix>:overflow`` (one ``http host_overflow`` event says so). A host with its own
entry in ``RESILIENCE["BREAKERS"]`` always keeps its own breaker and does not count.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

try:
    import requests
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without requests
    from resilience.integrations.extras import missing

    raise missing("requests", "resilience.integrations.http.session") from exc

from resilience.breakers.decorator import circuit_breaker
from resilience.breakers.registry import breakers
from resilience.conf import DEFAULTS, resilience_settings
from resilience.core.deadline import bounded, remaining
from resilience.core.validation import check_number
from resilience.exceptions import DeadlineExceeded
from resilience.integrations.http.classifiers import HTTP_RETRYABLE_STATUS
from resilience.observability.events import Event, emit
from resilience.retries.policies import retry

TIMEOUT_HEADER = "X-Request-Timeout"
DEFAULT_MAX_HOST_BREAKERS = DEFAULTS["HTTP_MAX_HOST_BREAKERS"]  # per breaker prefix and process; a breaker costs ~3 kB
MAX_HOST_BREAKERS = 100_000


class HostBreakers:
    """The host breakers this process made, per prefix, at most ``limit`` each; later hosts get the
    prefix's overflow breaker. Forgotten with the registry's breakers (``breakers.version``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, set[str]] = {}
        self._overflowed: set[str] = set()
        self._version = -1

    def name_for(self, prefix: str, name: str, limit: int) -> str:
        """``name`` while ``prefix`` has room (or already has it), else ``<prefix>:overflow``."""
        known = self._known.get(prefix)
        if known is not None and name in known and self._version == breakers.version:
            return name
        with self._lock:
            if self._version != breakers.version:
                self._known, self._overflowed, self._version = {}, set(), breakers.version
            known = self._known.setdefault(prefix, set())
            if name in known or len(known) < limit:
                known.add(name)
                return name
            first = prefix not in self._overflowed
            self._overflowed.add(prefix)
        overflow = f"{prefix}:overflow"
        if first:  # once per prefix until the registry reloads: the host itself is never reported
            emit(Event("http", "host_overflow", overflow, {"max_hosts": limit}))
        return overflow


host_breakers = HostBreakers()


def default_max_host_breakers() -> int:
    """``RESILIENCE["HTTP_MAX_HOST_BREAKERS"]`` (validated by ``conf``)."""
    return int(resilience_settings.HTTP_MAX_HOST_BREAKERS)


class _StatusFailure(requests.HTTPError):
    """Raised inside the breaker for 5xx/429 so the breaker and retry policy see it; unwrapped after."""


class ResilientSession(requests.Session):
    def __init__(
        self,
        *,
        policy: str = "http",
        timeout: float = 10.0,
        breaker_prefix: str = "http",
        propagate_deadline: bool = True,
        max_host_breakers: int | None = None,
    ) -> None:
        super().__init__()
        bound = max_host_breakers
        if bound is not None:
            check_number("ResilientSession: max_host_breakers", bound, 1, MAX_HOST_BREAKERS, integer=True)
        self.policy, self.default_timeout = policy, timeout
        self.breaker_prefix, self.propagate_deadline = breaker_prefix, propagate_deadline
        self.max_host_breakers = max_host_breakers

    def breaker_name(self, url: str) -> str:
        """One breaker per scheme://host:port, e.g. ``http:https://api.example.com:443``."""
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
        return f"{self.breaker_prefix}:{parts.scheme}://{(parts.hostname or '')[:150]}:{port}"

    def breaker_for(self, url: str) -> str:
        """The breaker a request to ``url`` goes through: its host's, or the overflow breaker past the bound."""
        name = self.breaker_name(url)
        if name in resilience_settings.BREAKERS:
            return name  # configured by the operator: always its own, never counted
        limit = self.max_host_breakers or default_max_host_breakers()
        return host_breakers.name_for(self.breaker_prefix, name, limit)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        breaker = circuit_breaker(self.breaker_for(str(url)))
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
                    raise _StatusFailure(f"{response.status_code} from {breaker.name}", response=response)
                return response

        try:
            return retrying.call(attempt)  # type: ignore[no-any-return]
        except _StatusFailure as exc:
            return exc.response  # type: ignore[return-value]
