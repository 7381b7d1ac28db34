"""Retry budget: retries may be at most ``ratio`` of calls plus a small floor, over a sliding window.

Like Finagle's and gRPC's retry throttling: during an outage every call fails, and without a budget
each caller's retries multiply the load on the dependency that is trying to recover.
"""

from __future__ import annotations

import math
import threading

from resilience.core.clock import SYSTEM_CLOCK, Clock


class LocalRetryBudget:
    """In-process budget: ``retries ≤ ratio · calls + floor_per_second · window`` over ``window`` seconds.

    The memory implementation of ``core.ports.RetryBudget`` (always healthy), and the Redis budget's
    local fallback."""

    healthy = True

    def __init__(self, ratio: float = 0.2, floor_per_second: float = 1.0, window: int = 10, clock: Clock = SYSTEM_CLOCK) -> None:
        self.ratio, self.floor, self.window, self.clock = ratio, floor_per_second * window, window, clock
        self._calls = [0] * window
        self._retries = [0] * window
        self._head = -1
        self._lock = threading.Lock()

    def _advance(self) -> int:
        second = math.floor(self.clock.monotonic())
        if second == self._head:  # the common case: nothing to evict
            return second % self.window
        for s in range(max(self._head + 1, second - self.window + 1), second + 1):
            self._calls[s % self.window] = self._retries[s % self.window] = 0
        self._head = max(self._head, second)
        return self._head % self.window

    def record_call(self) -> None:
        """Count one call."""
        with self._lock:
            self._calls[self._advance()] += 1

    def try_retry(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is spent."""
        with self._lock:
            i = self._advance()
            if sum(self._retries) + 1 > self.ratio * sum(self._calls) + self.floor:
                return False
            self._retries[i] += 1
            return True
