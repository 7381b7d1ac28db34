"""Worker processes of the cluster tests (fresh interpreters, the test suite's own Redis Cluster)."""

from __future__ import annotations

from typing import Any


def watch(resilience: dict[str, Any], name: str, ready: Any, results: Any, opens: int) -> None:
    """Read breaker ``name``'s local view every 0.2 ms; report the time each change to open is seen."""
    import time

    from tests.storage.workers import setup

    setup(resilience)
    from resilience import circuit_breaker

    breaker = circuit_breaker(name)
    breaker.call(lambda: None)  # created, synced, subscribed
    ready.wait(30)
    last, seen, deadline = breaker.state, 0, time.monotonic() + 120
    while (seen < opens or last == "open") and time.monotonic() < deadline:  # the last reset seen too
        state = breaker.state
        if state != last:
            if state == "open":
                results.put(time.time())
                seen += 1
            else:
                results.put(None)  # back to closed: the next trip may start
            last = state
        time.sleep(0.0002)


def under_load(resilience: dict[str, Any], breaker_name: str, seconds: float, barrier: Any, results: Any) -> None:
    """Bounded load through one shared breaker and one rate-limit decision (fail mode ``local``),
    a call every 5 ms for ``seconds``; then watch the breaker until it is seen open (the main process
    trips it once every worker is past ``barrier`` the second time). Reports what escaped (it must be
    nothing), the slowest call, and when Redis was last unavailable to the limiter."""
    import os
    import time

    from tests.storage.workers import setup

    setup(resilience)
    from resilience import CircuitOpenError, circuit_breaker
    from resilience.ratelimit.limiter import limiter
    from resilience.ratelimit.policies import policy
    from resilience.signals import event_emitted

    outages: list[tuple[float, str]] = []

    def receive(sender: Any, event: Any, **kwargs: Any) -> None:
        if event.kind == "store_unavailable":
            outages.append((time.time(), f"{event.area}:{event.name}"))

    event_emitted.connect(receive, weak=False)
    breaker = circuit_breaker(breaker_name)
    rule = policy("client", {"rate": "100000/1s", "fail": "local"}, "failover test")
    identity, prefix = f"worker-{os.getpid()}", resilience["KEY_PREFIX"]
    breaker.call(lambda: None)
    limiter().hit([(rule, identity)], prefix)
    barrier.wait(60)
    escaped: list[str] = []
    calls, rejected, slowest = 0, 0, 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            breaker.call(lambda: None)
            limiter().hit([(rule, identity)], prefix)
        except CircuitOpenError:
            rejected += 1
        except Exception as exc:  # noqa: BLE001 - what the test counts: nothing may escape
            escaped.append(type(exc).__name__)
        slowest = max(slowest, time.monotonic() - started)
        calls += 1
        time.sleep(0.005)
    barrier.wait(60)
    seen_open = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if breaker.state == "open":
            seen_open = time.time()
            break
        time.sleep(0.001)
    results.put(
        {
            "pid": os.getpid(),
            "calls": calls,
            "rejected": rejected,
            "escaped": escaped,
            "slowest": slowest,
            "outages": outages,
            "seen_open": seen_open,
            "gen": breaker.breaker.view().gen,
        }
    )
