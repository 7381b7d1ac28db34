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

from ..core.gcra import Decision, Limit, decide, ttl

LUA_EPOCH = 1_700_000_000  # the scripts keep times relative to this (microsecond precision with tostring)


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
    """One Lua script per decision (one round trip), on Redis's clock; errors propagate to the limiter."""

    def __init__(self, client: redis.Redis) -> None:
        folder = resources.files(__package__) / "lua"
        self._client = client
        self._script = client.register_script((folder / "ratelimit.lua").read_text())
        self._penalty = client.register_script((folder / "login_failure.lua").read_text())

    def penalise(self, limit: Limit, counter_key: str, window: int, max_wait: float) -> int:
        args: list[str | int | float] = [repr(limit.interval), limit.burst, window, max_wait]
        return int(self._penalty(keys=[limit.key, counter_key], args=args))

    def forget(self, *keys: str) -> None:
        self._client.delete(*keys)

    def hit(self, limits: list[Limit], peek: bool = False) -> Decision:
        argv: list[Any] = []
        for limit in limits:
            interval, tolerance = limit.wire or (repr(limit.interval), repr(limit.tolerance))
            argv += (interval, tolerance, limit.cost)
        argv.append(1 if peek else 0)
        keys = [limit.key for limit in limits]
        try:  # evalsha directly: redis-py's Script wrapper costs ~1.7 us more per call
            reply = self._client.evalsha(self._script.sha, len(keys), *keys, *argv)
        except redis.exceptions.NoScriptError:
            reply = self._script(keys=keys, args=argv)  # loads the script, then runs it
        tats = [float(v) + LUA_EPOCH if v else None for v in reply[2:]]
        # the script's verdict is authoritative; per-limit states are computed if someone reads them
        return Decision(bool(reply[0]), None, (limits, tats, float(reply[1]) + LUA_EPOCH))
