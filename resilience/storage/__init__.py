"""Where shared state lives: the one place that picks Redis (``RESILIENCE["REDIS"]`` set: every
worker shares it) or this process's memory, for each store kind of ``core.ports``.

Each function builds a new store; callers keep the one they build (and drop it on settings reload).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from resilience.conf import resilience_settings
from resilience.core.budget import LocalRetryBudget
from resilience.core.ports import BreakerStore, RateLimitStore, RetryBudget, StaleStore
from resilience.core.windows import WindowSnapshot

if TYPE_CHECKING:
    import redis


def _client() -> redis.Redis | None:
    """``shared_client()``, imported on first use: the memory stores need neither redis nor its client."""
    from resilience.storage.redis.client import shared_client

    return shared_client()


def breaker_store(stats_source: Callable[[], dict[str, WindowSnapshot]] | None = None) -> BreakerStore:
    """Breaker state; with Redis, ``stats_source`` gives this process's window counts to share."""
    client = _client()
    if client is None:
        from resilience.storage.memory.breaker import MemoryBreakerStore

        return MemoryBreakerStore()
    from resilience.storage.redis.breaker import RedisBreakerStore

    return RedisBreakerStore(
        client,
        prefix=resilience_settings.KEY_PREFIX,
        sync_interval=resilience_settings.SYNC_INTERVAL,
        state_ttl=int(resilience_settings.STATE_TTL),
        stats_source=stats_source,
    )


def retry_budget(name: str, ratio: float, floor: float, window: int) -> RetryBudget:
    """The retry budget of policy ``name``: ``retries ≤ ratio · calls + floor · window`` over
    ``window`` seconds (``floor`` is retries per second)."""
    client = _client()
    if client is None:
        return LocalRetryBudget(ratio, floor, window)
    from resilience.storage.redis.budget import RedisRetryBudget

    return RedisRetryBudget(
        client, name, prefix=resilience_settings.KEY_PREFIX, ratio=ratio, floor_per_second=floor, window=window
    )


def stale_store() -> StaleStore:
    """Where fallbacks keep their last good values."""
    client = _client()
    if client is None:
        from resilience.storage.memory.stale import MemoryStaleStore

        return MemoryStaleStore()
    from resilience.storage.redis.stale import RedisStaleStore

    return RedisStaleStore(client, resilience_settings.KEY_PREFIX)


def rate_limit_store() -> RateLimitStore | None:
    """The shared rate-limit store, or None without Redis (the limiter then uses its own memory one)."""
    client = _client()
    if client is None:
        return None
    from resilience.storage.redis.ratelimit import RedisRateLimitStore

    return RedisRateLimitStore(client)
