"""A retry budget shared by every worker through Redis, with the in-process budget as fallback.

Calls are counted locally and sent along with the next retry decision, so a call that needs no
retry costs no round trip; a retry decision is one Lua script.
"""

from __future__ import annotations

import hashlib
import threading
from importlib import resources

import redis

from resilience.core.budget import LocalRetryBudget
from resilience.storage.redis.breaker import REDIS_ERRORS


class RedisRetryBudget:
    def __init__(
        self, client: redis.Redis, name: str, *, prefix: str, ratio: float, floor_per_second: float, window: int
    ) -> None:
        tag = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:20]
        self.key = f"{prefix}:retry-budget:{{{tag}}}"
        self.ratio, self.floor, self.window = ratio, floor_per_second * window, window
        self._script = client.register_script((resources.files(__package__) / "lua" / "retry_budget.lua").read_text())
        self._local = LocalRetryBudget(ratio, floor_per_second, window)
        self._pending = 0
        self._lock = threading.Lock()

    def record_call(self) -> None:
        self._local.record_call()
        with self._lock:
            self._pending += 1

    def try_retry(self) -> bool:
        with self._lock:
            pending, self._pending = self._pending, 0
        try:
            granted = self._script(keys=[self.key], args=[pending, 1, self.ratio, self.floor, self.window])
        except REDIS_ERRORS:
            with self._lock:
                self._pending += pending  # not delivered: send it with the next decision
            return self._local.try_retry()
        return bool(granted)
