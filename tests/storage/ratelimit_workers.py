"""Worker processes for the rate-limit accuracy tests (fresh interpreters, real Redis)."""

from __future__ import annotations

import threading
from typing import Any


def race(redis_url: str, limits: list[tuple[Any, ...]], barrier: Any, results: Any, threads: int, tries: int) -> None:
    import redis

    from resilience.core.gcra import Limit
    from resilience.storage.redis.ratelimit import RedisRateLimitStore

    store = RedisRateLimitStore(redis.Redis.from_url(redis_url))
    admitted = [0] * threads

    def worker(index: int) -> None:
        barrier.wait(30)
        for n in range(tries):
            chosen = [Limit(*spec) for spec in limits[(index + n) % len(limits)]]
            if store.hit(chosen).allowed:
                admitted[index] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    results.put(sum(admitted))
