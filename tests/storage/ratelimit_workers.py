"""Worker processes for the rate-limit accuracy tests (fresh interpreters, real Redis)."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

SPAWN = multiprocessing.get_context("spawn")


def run_race(redis_url: str, limit_sets: list[Any], processes: int = 8, threads: int = 4, tries: int = 40) -> int:
    """``processes`` spawned workers of ``threads`` threads, ``tries`` decisions each, released at
    once by a barrier: how many were admitted in all (one server or ``redis+cluster://``)."""
    barrier, results = SPAWN.Barrier(processes), SPAWN.Queue()
    procs = [
        SPAWN.Process(target=race, args=(redis_url, limit_sets, barrier, results, threads, tries), daemon=True)
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    try:
        return sum(results.get(timeout=90) for _ in procs)
    finally:
        for p in procs:
            p.join(10)
            p.kill()


def race(redis_url: str, limits: list[tuple[Any, ...]], barrier: Any, results: Any, threads: int, tries: int) -> None:
    """``threads`` threads each try ``tries`` decisions at once; report how many were admitted. The
    library's own client for ``redis_url`` (one server, or ``redis+cluster://``)."""
    from resilience.core.gcra import Limit
    from resilience.storage.redis.client import connect
    from resilience.storage.redis.ratelimit import RedisRateLimitStore

    store = RedisRateLimitStore(connect(redis_url, 2.0))
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
