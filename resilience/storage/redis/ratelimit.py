"""Rate-limit engines: in-process and Redis, with identical GCRA semantics (``core.gcra``).

``hit(limits)`` decides every limit of one request at once, all or nothing; ``peek=True`` decides
without consuming (no caller uses it: shadow policies consume like enforced ones, so what they report
is what enforcing would do). Keys are given already normalised and hashed by the caller.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, defaultdict
from importlib import resources
from typing import Any

import redis

from resilience.core.gcra import MICROS, Decision, Limit, decide, ttl
from resilience.storage.redis.fastscript import FastScript

MAX_WEIGHT = 1_000  # a sweep ranks limits in force by requests remembered, up to this many (then by use)


class MemoryRateLimitStore:
    """Key -> (TAT, expiry, the limit's (T, τ)) under a lock, least recently used first, at most ``max_keys``.

    When full, a sweep makes room for a quarter of the bound (one pass, so O(1) amortised per hit).
    It first forgets every key that no longer counts: expired, or a TAT already past (GCRA reads
    that as no state). Only if that is not enough does it forget limits still in force: those that
    remember the fewest requests first (a TAT one interval ahead before a limit that refuses; a
    cool-off counter by its failures), the least recently used first among equals. A flood of new
    identities thus costs each other one request's worth before it costs a refusing limit anything.
    Failure counters (``penalise``) are kept the same way, in force until their window ends.
    """

    def __init__(self, clock: Any = time.time, max_keys: int = 100_000) -> None:
        self._clock = clock
        # value: TAT, or a failure count when wire is None; expiry; the limit's (T, τ) in µs (shared per policy)
        self._tats: OrderedDict[str, tuple[float, float, tuple[int, int] | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def hit(self, limits: list[Limit], peek: bool = False) -> Decision:
        with self._lock:
            now = self._clock()
            tats: list[float | None] = []
            missing = 0
            for limit in limits:
                entry = self._tats.get(limit.key)
                if entry is None:
                    missing += 1
                else:
                    self._tats.move_to_end(limit.key)  # a refused or peeked key is in use too
                tats.append(entry[0] if entry is not None and entry[1] > now else None)
            decision, new_tats = decide(limits, tats, now)
            if decision.allowed and not peek:
                if missing and len(self._tats) + missing > self._max_keys:
                    self._sweep(now, len(limits))  # may drop these keys too: their new TATs are known
                for limit, new_tat in zip(limits, new_tats, strict=True):
                    self._tats[limit.key] = (new_tat, now + ttl(new_tat, now), limit.wire)
            return decision

    def penalise(self, limit: Limit, counter_key: str, window: int, max_wait: float) -> int:
        """One failure against ``limit`` (see ``login_failure.lua``): its TAT moves forward by an
        interval that doubles with each failure past the burst. Returns the failure count."""
        with self._lock:
            now = self._clock()
            entry, stored = self._tats.get(counter_key), self._tats.get(limit.key)
            failures = (int(entry[0]) if entry is not None and entry[1] > now else 0) + 1
            tat = max(stored[0] if stored is not None and stored[1] > now else now, now)
            step = limit.interval * 2 ** min(max(failures - limit.burst, 0), 30)
            tat = min(tat + step, now + limit.burst * limit.interval + max_wait)  # as login_failure.lua
            if (entry is None or stored is None) and len(self._tats) + 2 > self._max_keys:
                self._sweep(now, 2)
            self._tats[counter_key] = (float(failures), now + window, None)
            self._tats.move_to_end(counter_key)
            self._tats[limit.key] = (tat, now + ttl(tat, now), limit.wire)
            self._tats.move_to_end(limit.key)
            return failures

    def forget(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._tats.pop(key, None)

    def _sweep(self, now: float, room: int) -> None:
        """Make room for ``room`` new keys, and a quarter of the bound more: first forget every key
        that no longer counts, then the limits in force that remember the fewest requests."""
        target = max(self._max_keys - max(self._max_keys // 4, room), 0)
        free: list[str] = []
        by_weight: dict[int, list[str]] = defaultdict(list)  # requests' worth remembered -> keys, LRU first
        for key, (value, expiry, wire) in self._tats.items():
            if wire is None:  # failure counter: counts until it expires
                if expiry <= now:
                    free.append(key)
                else:
                    by_weight[min(int(value), MAX_WEIGHT)].append(key)
            elif value <= now or expiry <= now:
                free.append(key)
            else:
                by_weight[min(math.ceil((value - now) * MICROS / wire[0]), MAX_WEIGHT)].append(key)
        for key in free:
            del self._tats[key]
        for weight in sorted(by_weight):
            if len(self._tats) <= target:
                return
            for key in by_weight[weight][: len(self._tats) - target]:
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
