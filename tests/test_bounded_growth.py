"""Client input cannot grow shared state without bound: stale keys per fallback, Redis counted."""

import pytest
from django.conf import settings as django_settings

from resilience import fallback
from resilience.tenancy import current_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_redis(settings, key_prefix):
    settings.RESILIENCE = {"HISTORY": False, "REDIS": django_settings.TEST_REDIS_URL, "KEY_PREFIX": key_prefix}


@pytest.fixture(params=["memory", "redis"])
def on_either(request, settings, key_prefix):
    settings.RESILIENCE = {"HISTORY": False, "KEY_PREFIX": key_prefix}
    if request.param == "redis":
        settings.RESILIENCE["REDIS"] = django_settings.TEST_REDIS_URL
    return request.param


def redis_keys(client, prefix):
    return list(client.scan_iter(f"{prefix}:*", count=1000))


def memory_of(client, keys):
    return sum(client.memory_usage(k) or 0 for k in keys)


def test_distinct_arguments_cannot_grow_redis_past_the_per_fallback_cap(on_redis, key_prefix, test_redis):
    from resilience.core.fallback import DEFAULT_MAX_STALE_KEYS as cap

    @fallback("search", stale_for=600, scope="public", default=[])
    def search(term):
        return [f"result for {term}"] * 4

    for n in range(3 * cap):  # a client choosing its search terms
        assert search(f"term-{n}") == [f"result for term-{n}"] * 4
    keys = redis_keys(test_redis, key_prefix)
    assert len(keys) <= cap + 1  # the values and one index, never one key per argument tuple
    assert all(0 < test_redis.pttl(k) <= 600_000 for k in keys)  # and all of them expire


def test_at_the_cap_known_keys_stay_fresh_and_new_ones_get_no_stale_value(on_either, events):
    state = {"up": True}

    @fallback("prices", stale_for=600, scope="public", default="default", max_stale_keys=3)
    def prices(sku):
        if not state["up"]:
            raise ConnectionError
        return f"price of {sku}"

    for sku in ["a", "b", "c", "d", "e", "a"]:
        prices(sku)
    state["up"] = False
    assert [prices(sku) for sku in "abcde"] == ["price of a", "price of b", "price of c", "default", "default"]
    full = [e for e in events if e.kind == "stale_full"]
    assert len(full) == 1 and full[0].name == "prices" and full[0].fields["max_keys"] == 3


def test_the_cap_counts_every_scope_of_one_fallback_and_each_fallback_has_its_own(on_redis, settings, key_prefix, test_redis):
    from tests.fallbacks.test_chain import Request

    settings.RESILIENCE = {**settings.RESILIENCE, "TENANT_RESOLVER": "tests.fallbacks.test_chain.request_tenant"}

    @fallback("per-tenant", stale_for=600, scope="tenant", default=None, max_stale_keys=5)
    def report(n):
        return n

    @fallback("other", stale_for=600, scope="public", default=None, max_stale_keys=5)
    def other(n):
        return n

    for tenant in range(20):
        token = current_request.set(Request(f"tenant-{tenant}"))
        try:
            report(1)
        finally:
            current_request.reset(token)
    for n in range(20):
        other(n)
    keys = [k for k in redis_keys(test_redis, key_prefix) if b":stale:" in k]  # importing test_chain first declares a breaker
    assert len(keys) == 2 * (5 + 1)  # five values and an index per fallback


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "100", 10_000_001])
def test_a_malformed_cap_is_refused_at_decoration(bad):
    from resilience.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="fallback 'f': max_stale_keys"):
        fallback("f", stale_for=60, max_stale_keys=bad)
