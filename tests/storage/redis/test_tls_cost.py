"""What TLS costs a rate-limit decision: FastScript decisions and redis-py PINGs over TLS + AUTH and over
plain TCP, on this machine, in interleaved rounds; printed (``-s``), never asserted (the machine is shared)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

from resilience.ratelimit.limiter import Limiter
from resilience.ratelimit.policies import policy
from resilience.storage.redis.client import connect
from resilience.storage.redis.ratelimit import RedisRateLimitStore
from tests.conftest import RedisServer, TlsRedisServer

ROUNDS, PER_ROUND = 10, 300  # 3,000 of each


def test_tls_costs_a_rate_limit_decision_about_what_it_costs_a_ping(
    tls_redis: TlsRedisServer, redis_server: RedisServer, key_prefix: str
) -> None:
    samples: dict[str, list[float]] = {"plain decision": [], "tls decision": [], "plain ping": [], "tls ping": []}
    stores: dict[str, RedisRateLimitStore] = {}
    calls: dict[str, Callable[[], object]] = {}
    for name, url in (("plain", redis_server.url), ("tls", tls_redis.user_url())):
        client = connect(url, 1.0)
        store = RedisRateLimitStore(client)
        limiter, rule = Limiter(store), policy("ip", "1000000/min", "x")
        stores[name] = store
        calls[f"{name} decision"] = partial(limiter.hit, [(rule, "198.51.100.1")], key_prefix)
        calls[f"{name} ping"] = client.ping
    for call in calls.values():  # connected, script loaded
        call()
    try:
        for _ in range(ROUNDS):
            for kind, call in calls.items():
                started = time.perf_counter()
                for _ in range(PER_ROUND):
                    call()
                samples[kind].append((time.perf_counter() - started) / PER_ROUND * 1e6)
    finally:
        for store in stores.values():
            store.close()
    assert all(stores[name]._script._factory is not None for name in stores)  # both through FastScript
    median = {kind: statistics.median(values) for kind, values in samples.items()}
    print(
        "\nrate-limit decision, median µs per call over {} rounds of {}: plain {:.1f} (PING {:.1f}), "
        "TLS+AUTH {:.1f} (PING {:.1f}); decision/PING plain {:.2f}, TLS {:.2f}; TLS/plain decision {:.2f}".format(
            ROUNDS, PER_ROUND, median["plain decision"], median["plain ping"], median["tls decision"], median["tls ping"],
            median["plain decision"] / median["plain ping"], median["tls decision"] / median["tls ping"],
            median["tls decision"] / median["plain decision"],
        )
    )  # fmt: skip
