"""The Redis rate-limit engine: one Lua script per decision, on Redis's clock, with the same GCRA
semantics as the in-process engine (``core.gcra``, ``storage.memory.ratelimit``).

``hit(limits)`` decides every limit of one request at once, all or nothing. Keys are given already
normalised and hashed by the caller, and every key the scripts write carries a TTL.
"""

from __future__ import annotations

from importlib import resources

import redis

from resilience.core.gcra import MICROS, Limit, RateDecision
from resilience.storage.redis.fastscript import FastScript
from resilience.storage.redis.scripts import LoginFailureArgs, LoginFailureKeys


class RedisRateLimitStore:
    """One Lua script per decision (one round trip), on Redis's clock; errors propagate to the limiter.
    Times cross the wire as whole microseconds since the Unix epoch."""

    def __init__(self, client: redis.Redis) -> None:
        folder = resources.files(__package__) / "lua"
        self._client = client
        # both scripts read "0" as they read a missing key: a TAT of 0 is in the past, a count of 0 is none
        self._script = FastScript(client, (folder / "ratelimit.lua").read_text(), absent="0")
        self._penalty = FastScript(client, (folder / "login_failure.lua").read_text(), absent="0")

    def penalise(self, limit: Limit, counter_key: str, window: int, max_wait: float) -> int:
        keys = LoginFailureKeys(cooloff=limit.key, failures=counter_key)
        args = LoginFailureArgs(
            interval_us=limit.wire[0], threshold=limit.burst, window=window, max_wait_us=round(max_wait * MICROS)
        )
        return int(self._penalty(keys.slots(), args.slots()))

    def forget(self, *keys: str) -> None:
        self._client.delete(*keys)

    def hit(self, limits: list[Limit]) -> RateDecision:
        args: list[int] = []
        for limit in limits:
            interval, tolerance = limit.wire
            args += (limit.cost * interval, tolerance)
        reply = self._script([limit.key for limit in limits], args)
        # the script's verdict is authoritative; per-limit states are computed if someone reads them
        return RateDecision(
            reply[0] == 1, None, (limits, [tat / MICROS if tat else None for tat in reply[2:]], reply[1] / MICROS)
        )

    def close(self) -> None:
        self._script.close()
        self._penalty.close()
