"""A concurrency cap: at most ``limit`` callers inside at once; the rest are refused, not queued."""

from __future__ import annotations

import threading


class Bulkhead:
    __slots__ = ("limit", "active", "_lock")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.active >= self.limit:
                return False
            self.active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.active -= 1
