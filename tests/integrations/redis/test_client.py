"""ResilientClient as django-redis CLIENT_CLASS, against real Redis and a fault proxy."""

import time

import pytest
import redis
from django.core.cache import caches

from resilience import CircuitOpenError, DeadlineExceeded, breakers, deadline
from resilience.integrations.redis.client import is_idempotent
from tests.faults.proxy import FaultProxy


@pytest.fixture
def proxy(redis_server):
    p = FaultProxy("127.0.0.1", redis_server.port)
    yield p
    p.close()


@pytest.fixture
def cache(settings, proxy, key_prefix):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": proxy.url(),
            "KEY_PREFIX": key_prefix,
            "OPTIONS": {"CLIENT_CLASS": "resilience.integrations.redis.ResilientClient", "SOCKET_TIMEOUT": 0.5},
        },
    }
    settings.RESILIENCE = {
        "HISTORY": False,
        "RETRY": {"redis": {"base": 0.001, "cap": 0.002, "attempts": 3, "budget": None}},
        "BREAKERS": {"default": {"minimum_calls": 3, "failure_rate": 50, "open_for": 30}},
    }
    return caches["shared"]


def test_commands_run_normally(cache):
    cache.set("k", {"v": 1}, 30)
    assert cache.get("k") == {"v": 1}
    cache.set("n", 0, 30)
    assert cache.incr("n") == 1


def test_idempotent_reads_are_retried_over_a_cut_connection(cache, proxy):
    cache.set("k", "v", 30)
    proxy.cut()  # the pooled connection dies under the client
    assert cache.get("k") == "v"


def test_incr_whose_reply_is_lost_is_never_retried_so_it_is_never_applied_twice(cache, proxy):
    cache.set("n", 0, 30)
    proxy.mute()  # the server increments, the reply never arrives: the case a retry would double
    with pytest.raises(redis.TimeoutError):
        cache.incr("n")
    proxy.heal()
    assert cache.get("n") == 1  # applied exactly once


def test_a_raw_incr_whose_reply_is_lost_is_applied_exactly_once(cache, proxy, redis_server):
    import redis as redis_py

    client = cache.client.get_client()
    import threading

    client.set("raw", 0)
    proxy.mute()
    threading.Timer(0.6, proxy.heal).start()  # healed after the first attempt timed out: a retry would get through
    with pytest.raises(redis_py.TimeoutError):
        client.incr("raw")
    assert int(redis_py.Redis(port=redis_server.port).get("raw")) == 1  # a retry would have made it 2 or 3


def test_a_get_whose_reply_is_lost_is_retried(cache, proxy, redis_server):
    import threading

    cache.set("k", "v", 30)
    proxy.mute()
    threading.Timer(0.2, proxy.heal).start()  # back before the retry (the first attempt times out at 0.5 s)
    assert cache.get("k") == "v"


def test_a_blocking_command_is_cut_off_at_the_deadline(cache):
    client = cache.client.get_client()
    started = time.monotonic()
    with deadline(0.3), pytest.raises(DeadlineExceeded):
        client.blpop(["empty-list"], timeout=5)
    assert time.monotonic() - started < 1.0


def test_no_command_is_sent_after_the_deadline(cache):
    client = cache.client.get_client()
    with deadline(0.0), pytest.raises(DeadlineExceeded):
        client.get("k")


def test_the_breaker_opens_when_redis_is_down_and_rejects_without_waiting(cache, proxy, redis_server):
    client = cache.client.get_client()
    client.ping()
    redis_server.kill()
    for _ in range(2):  # with the PING above: 3 calls, 67 % failed
        with pytest.raises(redis.ConnectionError):
            client.incr("x")
    assert breakers.get(client.breaker_name).state == "open"
    started = time.monotonic()
    with pytest.raises(CircuitOpenError):
        client.get("x")
    assert time.monotonic() - started < 0.05


@pytest.mark.parametrize(("args", "expected"), [
    (("GET", "k"), True), ((b"get", b"k"), True), (("SET", "k", "v"), True), (("SET", "k", "v", "EX", 5), True),
    (("SET", "k", "v", "NX"), False), (("SET", "k", "v", "GET"), False), (("INCR", "k"), False), (("INCRBY", "k", 1), False),
    (("LPUSH", "l", "v"), False), (("EVALSHA", "abc", 0), False), (("DEL", "k"), True),
])  # fmt: skip
def test_only_idempotent_commands_are_retryable(args, expected):
    assert is_idempotent(args) is expected


def test_commands_cut_off_by_the_callers_deadline_never_open_the_servers_breaker(cache):
    client = cache.client.get_client()
    for _ in range(6):  # twice minimum_calls
        with deadline(0.05), pytest.raises(DeadlineExceeded):
            client.blpop(["empty-list"], timeout=5)
    assert breakers.get(client.breaker_name).state == "closed"
    assert breakers.get(client.breaker_name).local_stats().calls == 0
    assert cache.get("anything") is None  # still served


def test_the_cache_of_resilient_client_can_also_hold_the_librarys_shared_state(settings, cache, key_prefix):
    """README's two Redis settings on one alias: RESILIENCE["REDIS"] = "shared", whose CLIENT_CLASS is
    ResilientClient. Building the library's client must not build the cache's client (which declares
    breakers, so needs the library's store): that cycle deadlocked the first request."""
    import threading

    settings.RESILIENCE = {"HISTORY": False, "REDIS": "shared", "KEY_PREFIX": key_prefix}
    done: list[object] = []
    first_use = threading.Thread(target=lambda: done.append(breakers.store.healthy and cache.set("k", 1, 30)), daemon=True)
    first_use.start()
    first_use.join(10)
    assert done == [True]  # finished, the shared store answered and the cache wrote
    assert cache.get("k") == 1
