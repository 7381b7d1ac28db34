"""Rate-limit engines: in-process and Redis, with identical GCRA semantics (``core.gcra``).

``hit(limits)`` decides every limit of one request at once, all or nothing; ``peek=True`` decides
without consuming (shadow mode). Keys are given already normalised and hashed by the caller.
"""

from __future__ import annotations

import threading
import time
from importlib import resources
from typing import Any

import redis

from ..core.gcra import MICROS, Decision, Limit, decide, ttl
from .fastscript import FastScript


class MemoryRateLimitStore:
    """One dict of key -> (TAT, expiry) under a lock; expired keys are swept as the dict grows."""

    def __init__(self, clock: Any = time.time, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._tats: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def hit(self, limits: list[Limit], peek: bool = False) -> Decision:
        with self._lock:
            now = self._clock()
            stored = [self._tats.get(limit.key) for limit in limits]
            tats = [entry[0] if entry is not None and entry[1] > now else None for entry in stored]
            decision, new_tats = decide(limits, tats, now)
            if decision.allowed and not peek:
                if len(self._tats) >= self._max_keys:
                    self._sweep(now)
                for limit, new_tat in zip(limits, new_tats, strict=True):
                    self._tats[limit.key] = (new_tat, now + ttl(new_tat, now))
            return decision

    def penalise(self, limit: Limit, counter_key: str, window: int, max_wait: float) -> int:
        """One failure against ``limit`` (see ``login_failure.lua``): its TAT moves forward by an
        interval that doubles with each failure past the burst. Returns the failure count."""
        with self._lock:
            now = self._clock()
            entry = self._tats.get(counter_key)
            failures = (int(entry[0]) if entry is not None and entry[1] > now else 0) + 1
            self._tats[counter_key] = (float(failures), now + window)
            stored = self._tats.get(limit.key)
            tat = max(stored[0] if stored is not None and stored[1] > now else now, now)
            tat = min(tat + limit.interval * 2 ** min(max(failures - limit.burst, 0), 30), now + limit.tolerance + max_wait)
            self._tats[limit.key] = (tat, now + ttl(tat, now))
            return failures

    def forget(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._tats.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._tats = {k: v for k, v in self._tats.items() if v[1] > now}
        if len(self._tats) >= self._max_keys:  # still full of live keys: forget the oldest half
            for key in list(self._tats)[: self._max_keys // 2]:
                del self._tats[key]

    def __len__(self) -> int:
        return len(self._tats)


class RedisRateLimitStore:
    """One Lua script per decision (one round trip), on Redis's clock; errors propagate to the limiter.
    Times cross the wire as whole microseconds since the Unix epoch."""

    def __init__(self, client: redis.Redis) -> None:
        folder = resources.files(__package__) / "lua"
        self._client = client
        self._script = FastScript(client, (folder / "ratelimit.lua").read_text())
        self._penalty = FastScript(client, (folder / "login_failure.lua").read_text())

    def penalise(self, limit: Limit, counter_key: str, window: int, max_wait: float) -> int:
        return int(self._penalty([limit.key, counter_key], [limit.wire[0], limit.burst, window, round(max_wait * MICROS)]))

    def forget(self, *keys: str) -> None:
        self._client.delete(*keys)

    def hit(self, limits: list[Limit], peek: bool = False) -> Decision:
        args: list[int] = []
        for limit in limits:
            interval, tolerance = limit.wire
            args += (limit.cost * interval, tolerance)
        args.append(1 if peek else 0)
        reply = self._script([limit.key for limit in limits], args)
        # the script's verdict is authoritative; per-limit states are computed if someone reads them
        return Decision(reply[0] == 1, None, (limits, [tat / MICROS if tat else None for tat in reply[2:]], reply[1] / MICROS))

    def close(self) -> None:
        self._script.close()
        self._penalty.close()
