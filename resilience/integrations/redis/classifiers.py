"""What is safe to retry against Redis; redis-py is imported when the classifier first runs."""

from __future__ import annotations


def redis_transient(exc: BaseException) -> bool:
    """Connection and timeout errors; the Redis adapter retries them for idempotent commands only."""
    import redis

    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError))
