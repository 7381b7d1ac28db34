"""The two GCRA engines: exact under racing processes, all or nothing, TTL on every key."""

import pytest
import redis
from django.conf import settings

from resilience.core.gcra import Limit
from resilience.storage.memory.ratelimit import MemoryRateLimitStore
from resilience.storage.redis.ratelimit import RedisRateLimitStore

from . import ratelimit_workers

HOUR = 3600.0


@pytest.fixture
def store():
    return RedisRateLimitStore(redis.Redis.from_url(settings.TEST_REDIS_URL))


def test_eight_processes_of_four_threads_racing_for_one_key_admit_exactly_the_limit(key_prefix):
    limit = (f"{key_prefix}:{{rl}}:one", 50, HOUR, 50)
    assert ratelimit_workers.run_race(settings.TEST_REDIS_URL, [[limit]]) == 50  # 1,280 attempts in all


def test_stacked_ip_and_tenant_limits_admit_exactly_the_tighter_total(key_prefix, test_redis):
    tenant = (f"{key_prefix}:{{rl}}:tenant", 40, HOUR, 40)
    ip_a = (f"{key_prefix}:{{rl}}:ip-a", 15, HOUR, 15)
    ip_b = (f"{key_prefix}:{{rl}}:ip-b", 15, HOUR, 15)
    assert (
        ratelimit_workers.run_race(settings.TEST_REDIS_URL, [[ip_a, tenant], [ip_b, tenant]]) == 30
    )  # both IPs full; the tenant saw only admitted requests
    last = RedisRateLimitStore(test_redis).hit([Limit(*tenant)])
    assert last.states[0].remaining == 9  # 40 - 30 admitted - this request's own cost of 1


def test_no_key_is_left_without_a_ttl(store, key_prefix, test_redis):
    limits = [Limit(f"{key_prefix}:{{rl}}:{n}", 5, 60.0, 5) for n in range(3)]
    for _ in range(7):
        store.hit(limits)
    keys = list(test_redis.scan_iter(f"{key_prefix}:*"))
    assert len(keys) == 3 and all(0 < test_redis.pttl(k) <= 60_000 for k in keys)


def test_a_rejected_request_writes_nothing(store, key_prefix, test_redis):
    full = Limit(f"{key_prefix}:{{rl}}:full", 1, 60.0, 1)
    other = Limit(f"{key_prefix}:{{rl}}:other", 100, 60.0, 100)
    assert store.hit([full]).allowed
    assert not store.hit([full, other]).allowed
    assert test_redis.get(other.key) is None


def test_memory_and_redis_engines_give_the_same_answers(store, key_prefix):
    memory = MemoryRateLimitStore()
    limits = [Limit(f"{key_prefix}:{{rl}}:a", 10, 60.0, 3), Limit(f"{key_prefix}:{{rl}}:b", 10, 60.0, 5, cost=2)]
    for n in range(8):
        chosen = limits[n % 2 :]
        a, b = memory.hit(chosen), store.hit(chosen)
        assert a.allowed == b.allowed
        assert [s.remaining for s in a.states] == [s.remaining for s in b.states]
        assert a.retry_after == pytest.approx(b.retry_after, abs=0.05)


def test_memory_engine_stays_bounded():
    memory = MemoryRateLimitStore(max_keys=100)
    for n in range(1_000):
        memory.hit([Limit(f"k{n}", 1, 3600.0, 1)])
    assert len(memory) <= 100


def test_tats_are_stored_as_whole_microseconds_of_the_redis_clock(store, key_prefix, test_redis):
    limit = Limit(f"{key_prefix}:{{rl}}:us", 10, 1.0, 10)  # T = 100,000 µs
    store.hit([limit])
    seconds, micros = test_redis.time()
    stored = int(test_redis.get(limit.key))  # a fraction or an exponent would not parse
    assert 0 < stored - (seconds * 1_000_000 + micros) <= 100_000


@pytest.mark.parametrize("junk", [b"not a number", b"95717471.855722", b"", b"\xff\xfe"])
def test_junk_in_a_key_counts_as_no_state_not_as_an_error(store, key_prefix, test_redis, junk):
    limit = Limit(f"{key_prefix}:{{rl}}:junk", 2, 60.0, 2)
    test_redis.set(limit.key, junk)
    assert [store.hit([limit]).allowed for _ in range(3)] == [True, True, False]
