"""resilience.storage: the one place that picks Redis or memory, per store kind."""

from django.conf import settings as django_settings

from resilience import storage
from resilience.core.budget import LocalRetryBudget
from resilience.storage.memory.breaker import MemoryBreakerStore
from resilience.storage.memory.stale import MemoryStaleStore
from resilience.storage.redis.breaker import RedisBreakerStore
from resilience.storage.redis.budget import RedisRetryBudget
from resilience.storage.redis.ratelimit import RedisRateLimitStore
from resilience.storage.redis.stale import RedisStaleStore
from tests.conftest import resilience_settings


def test_without_redis_every_store_is_this_processs_and_healthy(settings):
    settings.RESILIENCE = resilience_settings()
    breaker, budget, stale = storage.breaker_store(), storage.retry_budget("svc", 0.2, 1.0, 10), storage.stale_store()
    assert isinstance(breaker, MemoryBreakerStore) and breaker.healthy
    assert isinstance(budget, LocalRetryBudget) and budget.healthy
    assert (budget.ratio, budget.floor, budget.window) == (0.2, 10.0, 10)
    assert isinstance(stale, MemoryStaleStore) and stale.healthy
    assert storage.rate_limit_store() is None


def test_with_redis_every_store_is_shared_under_the_configured_prefix(settings, key_prefix):
    settings.RESILIENCE = resilience_settings(REDIS=django_settings.TEST_REDIS_URL, KEY_PREFIX=key_prefix, SYNC_INTERVAL=0.1)
    breaker = storage.breaker_store()
    try:
        assert isinstance(breaker, RedisBreakerStore) and breaker.healthy and breaker.remote
    finally:
        breaker.close()
    budget = storage.retry_budget("svc", 0.5, 0.0, 10)
    assert isinstance(budget, RedisRetryBudget) and budget.keys.budget.startswith(f"{key_prefix}:retry-budget:")
    assert (budget.ratio, budget.floor, budget.window) == (0.5, 0.0, 10)
    assert isinstance(storage.stale_store(), RedisStaleStore)
    limits = storage.rate_limit_store()
    assert isinstance(limits, RedisRateLimitStore)
    limits.close()


def test_the_breaker_registry_retry_policies_and_fallbacks_build_their_stores_here(settings, key_prefix):
    from resilience.breakers.registry import breakers
    from resilience.fallbacks.chain import stale_store
    from resilience.retries.policies import policy

    settings.RESILIENCE = resilience_settings(REDIS=django_settings.TEST_REDIS_URL, KEY_PREFIX=key_prefix, SYNC_INTERVAL=0.1)
    assert isinstance(breakers.store, RedisBreakerStore)
    assert isinstance(policy("postgres").budget, RedisRetryBudget)
    assert isinstance(stale_store(), RedisStaleStore)
    settings.RESILIENCE = resilience_settings()
    assert isinstance(breakers.store, MemoryBreakerStore)
    assert isinstance(policy("postgres").budget, LocalRetryBudget)
    assert isinstance(stale_store(), MemoryStaleStore)
