"""Breaker change notices on a Redis Cluster: plain PUBLISH/SUBSCRIBE, as on a single server.

A script's ``PUBLISH`` reaches every node over the cluster bus, so a process subscribed to any node
hears every breaker; sharded ``SPUBLISH`` would tie the one channel to one shard (or need one
subscription per breaker) for traffic that is a few messages per state change. The propagation delay
from one process's trip to another process's local view is measured here on both, 50 trips each.
"""

import math
import multiprocessing
import statistics
import time

import pytest
import redis
from django.conf import settings as django_settings

from resilience import circuit_breaker
from tests.storage.redis import cluster_workers
from tests.waiting import wait_for

SPAWN = multiprocessing.get_context("spawn")
TRIPS = 50


def _fail():
    raise ConnectionError("dependency down")


def propagation_delays(settings, redis_url, prefix, nodes):
    """Seconds from a trip returning here to a watching process's view showing it open, ``TRIPS`` times.
    The poll is a minute away: only the notices can carry the change."""
    settings.RESILIENCE = {
        "REDIS": redis_url, "KEY_PREFIX": prefix, "SYNC_INTERVAL": 60, "HISTORY": False,
        "BREAKERS": {"watched": {"minimum_calls": 1, "open_for": 3600}},
    }  # fmt: skip
    ready, results = SPAWN.Barrier(2), SPAWN.Queue()
    watcher = SPAWN.Process(
        target=cluster_workers.watch, args=(settings.RESILIENCE, "watched", ready, results, TRIPS), daemon=True
    )
    watcher.start()
    try:
        breaker = circuit_breaker("watched")
        breaker.call(lambda: None)
        channel = f"{prefix}:breaker-changes"  # both sync threads subscribed (a node counts its own subscribers)
        assert wait_for(lambda: sum(n.pubsub_numsub(channel)[0][1] for n in nodes) == 2, timeout=10)
        ready.wait(60)
        delays = []
        for _ in range(TRIPS):
            with pytest.raises(ConnectionError):
                breaker.call(_fail)
            tripped = time.time()
            seen = results.get(timeout=10)
            delays.append(seen - tripped)
            breaker.reset()
            assert results.get(timeout=10) is None  # the watcher saw it closed again
        return delays
    finally:
        watcher.join(5)
        watcher.kill()


def _summary(delays):
    """p50 and p99 in ms (nearest rank: of 50 delays, p99 is the slowest)."""
    ordered = sorted(delays)
    return statistics.median(ordered) * 1000, ordered[math.ceil(0.99 * len(ordered)) - 1] * 1000


def test_a_trip_reaches_another_process_through_the_notices_on_the_cluster_as_on_one_server(settings, redis_cluster, key_prefix):
    single = propagation_delays(
        settings, django_settings.TEST_REDIS_URL, key_prefix, [redis.Redis.from_url(django_settings.TEST_REDIS_URL)]
    )
    cluster = propagation_delays(settings, redis_cluster.url, key_prefix + "-c", [n.client() for n in redis_cluster.nodes])
    (s50, s99), (c50, c99) = _summary(single), _summary(cluster)
    print(f"\nnotice propagation, {TRIPS} trips: single server p50 {s50:.2f} ms p99 {s99:.2f} ms;", end=" ")
    print(f"cluster p50 {c50:.2f} ms p99 {c99:.2f} ms")
    assert max(single) < 1.0 and max(cluster) < 1.0  # far below the minute-long poll: the notices carried every trip
