"""A retry budget shared by every worker through Redis, with the in-process budget as fallback.

Calls are counted locally, per second, and those of the last ``window`` seconds are sent along with
the next retry decision, so a call that needs no retry costs no round trip; a retry decision is one
Lua script. Calls older than the window are dropped before they are sent: a worker whose calls all
succeeded for an hour must not credit that hour's calls to the moment an outage starts (the shared
budget would then admit ``ratio`` of them as retries at once, the storm it exists to stop). While Redis fails the local budget
decides: one ``storage store_unavailable`` event (name ``retry_budget``, field ``budget``) says so,
one ``store_recovered`` its end.
"""

from __future__ import annotations

import math
import threading
from collections import deque

import redis

from resilience.core.budget import LocalRetryBudget
from resilience.core.clock import SYSTEM_CLOCK, Clock
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
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        tag = digest(name, 20)
        self.keys = RetryBudgetKeys(budget=f"{prefix}:retry-budget:{{{tag}}}")
        self.ratio, self.floor, self.window = ratio, floor_per_second * window, window
        self._script = retry_budget(client)
        self.clock = clock
        self._local = LocalRetryBudget(ratio, floor_per_second, window, clock)
        self._health = StoreHealth("retry_budget", emit, budget=name)
        self._pending: deque[list[int]] = deque()  # [second (monotonic), calls], oldest first, at most ``window``
        self._lock = threading.Lock()

    @property
    def healthy(self) -> bool:
        """False for a second after Redis failed (the local budget decided)."""
        return self._health.healthy

    def record_call(self) -> None:
        """Count one call, locally; it reaches Redis with the next retry decision, if within the window."""
        self._local.record_call()
        second = math.floor(self.clock.monotonic())
        with self._lock:
            pending = self._pending
            if pending and pending[-1][0] == second:
                pending[-1][1] += 1
            else:
                pending.append([second, 1])
                if len(pending) > self.window:  # distinct seconds, oldest first: that one is past the window
                    pending.popleft()

    def _take_pending(self) -> deque[list[int]]:
        """The pending seconds still inside the window (older ones are dropped); none are left behind."""
        oldest = math.floor(self.clock.monotonic()) - self.window
        with self._lock:
            pending, self._pending = self._pending, deque()
        while pending and pending[0][0] <= oldest:
            pending.popleft()
        return pending

    def try_retry(self) -> bool:
        """Take one retry from the shared budget (the local one when Redis fails)."""
        taken = self._take_pending()
        calls = sum(count for _, count in taken)
        args = RetryBudgetArgs(pending_calls=calls, want_retry=1, ratio=self.ratio, floor=self.floor, window=self.window)
        try:
            granted = self._script(self.keys, args)
        except REDIS_ERRORS as exc:
            with self._lock:  # not delivered: send it with the next decision (merged in order of seconds)
                self._pending = deque(sorted([*taken, *self._pending]))
            self._health.failed(exc, fallback="local")
            return self._local.try_retry()
        self._health.succeeded()
        return bool(granted)
