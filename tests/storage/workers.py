"""Entry points of the worker processes spawned by the multi-process tests (fresh interpreters)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any


def setup(resilience: dict[str, Any]) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django.test.utils import override_settings

    override_settings(RESILIENCE=resilience).enable()


def first_rejection(resilience: dict[str, Any], barrier: Any, results: Any) -> None:
    """Call through "shared" every 2 ms until the breaker rejects; report when that happened."""
    setup(resilience)
    from resilience import CircuitOpenError, circuit_breaker

    breaker = circuit_breaker("shared")
    breaker.call(lambda: None)  # created, synced, subscribed
    barrier.wait(30)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            breaker.call(lambda: None)
        except CircuitOpenError:
            results.put(("rejected", os.getpid(), time.time()))
            return
        time.sleep(0.002)
    results.put(("never", os.getpid(), time.time()))


def half_open_callers(resilience: dict[str, Any], barrier: Any, results: Any, redis_url: str, counter: str, threads: int) -> None:
    """``threads`` callers that each try one call at the same moment, in half-open."""
    setup(resilience)
    import redis

    from resilience import CircuitOpenError, circuit_breaker

    client = redis.Redis.from_url(redis_url)
    breaker = circuit_breaker("probed")
    breaker.breaker.view()  # created before the race

    def probe() -> str:
        client.incr(counter)
        client.expire(counter, 60)
        time.sleep(1.0)  # hold the permit while everyone else tries
        return "probed"

    def caller() -> None:
        barrier.wait(30)
        try:
            results.put(breaker.call(probe))
        except CircuitOpenError as exc:
            results.put(f"rejected:{exc.state}")

    pool = [threading.Thread(target=caller) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(30)


def rejection_delays(resilience: dict[str, Any], count: int) -> list[tuple[str, int, float]]:
    """Start ``count`` processes running ``first_rejection``, open "shared" here with three failures
    once they call, and return each one's report: (``"rejected"`` or ``"never"``, its pid, the
    seconds from the opening to its first rejection). The test process must use ``resilience`` too."""
    import multiprocessing

    import pytest

    from resilience import circuit_breaker

    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(count + 1), spawn.Queue()
    procs = [spawn.Process(target=first_rejection, args=(resilience, barrier, results), daemon=True) for _ in range(count)]
    for p in procs:
        p.start()
    try:
        barrier.wait(60)
        time.sleep(0.2)  # the workers are calling happily
        breaker = circuit_breaker("shared")
        for _ in range(3):
            with pytest.raises(ConnectionError):
                breaker.call(_refused)
        opened = time.time()
        assert breaker.state == "open"
        reports = [results.get(timeout=15) for _ in procs]
    finally:
        for p in procs:
            p.join(5)
            p.kill()
    return [(kind, pid, at - opened) for kind, pid, at in reports]


def _refused() -> None:
    raise ConnectionError("the dependency is down")


def half_open_outcomes(resilience: dict[str, Any], counter_url: str, counter: str) -> tuple[int, list[str]]:
    """Trip the ``probed`` breaker here, then let 16 callers (4 spawned processes of 4 threads) call it
    at once after its ``open_for``: how many probes ran (counted on ``counter`` at ``counter_url``)
    and each caller's outcome (``probed`` or ``rejected:<state>``)."""
    import multiprocessing

    import pytest
    import redis

    from resilience import circuit_breaker

    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(17), spawn.Queue()
    args = (resilience, barrier, results, counter_url, counter, 4)
    procs = [spawn.Process(target=half_open_callers, args=args, daemon=True) for _ in range(4)]
    for p in procs:
        p.start()
    try:
        breaker = circuit_breaker("probed")
        with pytest.raises(ConnectionError):
            breaker.call(_refused)
        assert breaker.state == "open"
        open_until = breaker.breaker.view().open_until
        while time.time() <= open_until + 0.05:  # open_for elapsed: the next calls are probes
            time.sleep(0.01)
        barrier.wait(60)
        outcomes = [results.get(timeout=15) for _ in range(16)]
    finally:
        for p in procs:
            p.join(5)
            p.kill()
    return int(redis.Redis.from_url(counter_url).get(counter) or 0), outcomes
