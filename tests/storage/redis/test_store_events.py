"""A Redis outage under each store is one ``storage store_unavailable`` event, its end one
``store_recovered``, however many operations fail meanwhile (real redis-server, killed and restarted)."""

import time

import pytest

from resilience import breakers, circuit_breaker
from resilience.core.event import Event
from resilience.storage.redis.budget import RedisRetryBudget
from resilience.storage.redis.client import connect
from resilience.storage.redis.stale import RedisStaleStore
from tests.waiting import wait_for


def storage_events(seen: list[Event]) -> list[Event]:
    return [e for e in seen if e.area == "storage"]


@pytest.fixture
def own_redis(redis_server):
    """A client with the library's short timeouts, on a server the test kills and restarts."""
    return connect(redis_server.url, 0.1)


def test_a_breaker_store_outage_is_one_event_and_its_end_another(settings, redis_server, events):
    settings.RESILIENCE = {
        "REDIS": redis_server.url,
        "REDIS_TIMEOUT": 0.1,
        "SYNC_INTERVAL": 0.1,
        "HISTORY": False,
        "BREAKERS": {"dep": {"minimum_calls": 1000}},
    }
    breaker = circuit_breaker("dep")
    breaker.call(lambda: None)
    redis_server.kill()
    assert wait_for(lambda: not breakers.store.healthy, timeout=5)
    for _ in range(50):
        breaker.call(lambda: None)  # answered on local state
        breakers.store.register("other")
    time.sleep(1.5)  # proving an absence: the sync thread keeps failing past retry_interval (1 s), no new event
    assert storage_events(events) == [
        Event("storage", "store_unavailable", "breaker", {"error": "ConnectionError", "fallback": "local"})
    ]
    redis_server.start()
    assert wait_for(lambda: len(storage_events(events)) == 2, timeout=5)
    assert storage_events(events)[1] == Event("storage", "store_recovered", "breaker", {})
    assert breakers.store.healthy


def test_a_retry_budget_falling_back_to_local_is_one_event_naming_the_budget(redis_server, own_redis, key_prefix, events):
    budget = RedisRetryBudget(own_redis, "svc", prefix=key_prefix, ratio=0.5, floor_per_second=0.0, window=10)
    for _ in range(4):
        budget.record_call()
    assert budget.try_retry() is True and budget.healthy
    redis_server.kill()
    assert [budget.try_retry() for _ in range(3)] == [True, True, False]  # the local budget: 0.5 * its 4 calls
    assert not budget.healthy
    fields = {"budget": "svc", "error": "ConnectionError", "fallback": "local"}
    assert storage_events(events) == [Event("storage", "store_unavailable", "retry_budget", fields)]
    redis_server.start()
    budget.try_retry()
    assert storage_events(events)[1:] == [Event("storage", "store_recovered", "retry_budget", {"budget": "svc"})]
    assert budget.healthy


def test_a_failing_stale_store_is_one_event_and_costs_only_stale_values(redis_server, own_redis, events):
    store = RedisStaleStore(own_redis, "stale-events")
    assert store.set("prices", "k", 1.0, [1], 60, 10) is True
    redis_server.kill()
    for _ in range(5):
        assert store.get("prices", "k") is None  # a miss, never an error
        assert store.set("prices", "k", 2.0, [2], 60, 10) is True  # lost, not refused
    assert not store.healthy
    fields = {"error": "ConnectionError", "fallback": "none"}
    assert storage_events(events) == [Event("storage", "store_unavailable", "stale", fields)]
    redis_server.start()  # empty
    assert store.get("prices", "k") is None
    assert storage_events(events)[1:] == [Event("storage", "store_recovered", "stale", {})]


def test_outage_events_reach_the_log_as_one_line_each(redis_server, own_redis, key_prefix, caplog):
    budget = RedisRetryBudget(own_redis, "svc", prefix=key_prefix, ratio=0.0, floor_per_second=1.0, window=10)
    budget.try_retry()
    redis_server.kill()
    with caplog.at_level("INFO", logger="resilience.storage"):
        for _ in range(20):
            budget.try_retry()
        redis_server.start()
        budget.try_retry()
    lines = [r.getMessage() for r in caplog.records if r.name == "resilience.storage"]
    assert lines == [
        "storage store_unavailable name=retry_budget budget=svc error=ConnectionError fallback=local",
        "storage store_recovered name=retry_budget budget=svc",
    ]


def test_a_second_outage_is_reported_again(redis_server, own_redis, events):
    store = RedisStaleStore(own_redis, "stale-events")
    for _ in range(2):
        store.get("g", "k")
        redis_server.kill()
        store.get("g", "k")
        store.get("g", "k")
        redis_server.start()
        store.get("g", "k")
    assert [e.kind for e in storage_events(events)] == ["store_unavailable", "store_recovered"] * 2
