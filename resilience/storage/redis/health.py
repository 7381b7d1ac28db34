"""Whether one Redis-backed store reaches Redis, and the one event per change of that.

An outage is ``storage store_unavailable`` (the first failure), its end ``storage store_recovered``
(the first success after it): one event each per outage, however many operations fail meanwhile.
The event's name is the store kind (``breaker``, ``retry_budget``, ``stale``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis

from resilience.core.event import Event, EventSink

REDIS_ERRORS = (redis.RedisError, OSError, redis.exceptions.RedisClusterException)  # the last: no slot map yet


class StoreHealth:
    """``healthy`` is False for ``retry_interval`` seconds after a failure (stores that skip Redis
    meanwhile ask it); ``failed``/``succeeded`` report the outage's start and end through ``emit``."""

    def __init__(self, kind: str, emit: EventSink, retry_interval: float = 1.0, **fields: Any) -> None:
        self.kind, self.fields = kind, fields
        self._emit = emit
        self._retry_interval = retry_interval
        self._down_until = 0.0
        self._outage = False  # reported unavailable, recovery not yet reported
        self._lock = threading.Lock()

    @property
    def healthy(self) -> bool:
        """False within ``retry_interval`` of the last failure."""
        return time.monotonic() >= self._down_until

    def failed(self, exc: BaseException, fallback: str) -> None:
        """An operation failed; ``fallback`` says what answered instead (``local``, ``none``, ``error``)."""
        self._down_until = time.monotonic() + self._retry_interval
        if self._outage:
            return
        with self._lock:
            if self._outage:
                return
            self._outage = True
        fields = {**self.fields, "error": type(exc).__name__, "fallback": fallback}
        self._emit(Event("storage", "store_unavailable", self.kind, fields))

    def succeeded(self) -> None:
        """An operation reached Redis: the end of an outage, if one was reported."""
        if not self._outage:
            return
        with self._lock:
            if not self._outage:
                return
            self._outage = False
            self._down_until = 0.0
        self._emit(Event("storage", "store_recovered", self.kind, dict(self.fields)))
