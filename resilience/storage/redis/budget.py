"""A retry budget shared by every worker through Redis, with the in-process budget as fallback.

Calls are counted locally and sent along with the next retry decision, so a call that needs no
retry costs no round trip; a retry decision is one Lua script. While Redis fails the local budget
decides: one ``storage store_unavailable`` event (name ``retry_budget``, field ``budget``) says so,
one ``store_recovered`` its end.
"""

from __future__ import annotations

import threading

import redis

from resilience.core.budget import LocalRetryBudget
from resilience.core.event import EventSink
from resilience.observability import events
from resilience.storage.keys import digest
from resilience.storage.redis.health import REDIS_ERRORS, StoreHealth
from resilience.storage.redis.scripts import RetryBudgetArgs, RetryBudgetKeys, retry_budget


class RedisRetryBudget:
    """``core.ports.RetryBudget`` at ``<prefix>:retry-budget:{<name tag>}``, on Redis's clock."""

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        *,
        prefix: str,
        ratio: float,
        floor_per_second: float,
        window: int,
        emit: EventSink = events.emit,
    ) -> None:
        tag = digest(name, 20)
        self.keys = RetryBudgetKeys(budget=f"{prefix}:retry-budget:{{{tag}}}")
        self.ratio, self.floor, self.window = ratio, floor_per_second * window, window
        self._script = retry_budget(client)
        self._local = LocalRetryBudget(ratio, floor_per_second, window)
        self._health = StoreHealth("retry_budget", emit, budget=name)
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def healthy(self) -> bool:
        """False for a second after Redis failed (the local budget decided)."""
        return self._health.healthy

    def record_call(self) -> None:
        """Count one call, locally; it reaches Redis with the next retry decision."""
        self._local.record_call()
        with self._lock:
            self._pending += 1

    def try_retry(self) -> bool:
        """Take one retry from the shared budget (the local one when Redis fails)."""
        with self._lock:
            pending, self._pending = self._pending, 0
        args = RetryBudgetArgs(pending_calls=pending, want_retry=1, ratio=self.ratio, floor=self.floor, window=self.window)
        try:
            granted = self._script(self.keys, args)
        except REDIS_ERRORS as exc:
            with self._lock:
                self._pending += pending  # not delivered: send it with the next decision
            self._health.failed(exc, fallback="local")
            return self._local.try_retry()
        self._health.succeeded()
        return bool(granted)
