"""``retry()``: named policies from settings, events, shared budgets, breakers."""

import logging
import time

import pytest
import redis
from django.conf import settings as django_settings

from resilience import ConfigurationError, RetryPolicy, circuit_breaker, retry
from resilience.core.backoff import Constant
from resilience.observability.metrics import InMemorySink
from resilience.retries.policies import policy
from resilience.storage.redis.budget import RedisRetryBudget

FAST = {"base": 0.001, "cap": 0.002}


def failing(times, exc=ConnectionError):
    state = {"n": 0}

    def fn():
        state["n"] += 1
        if state["n"] <= times:
            raise exc("transient")
        return state["n"]

    fn.state = state
    return fn


def test_named_policy_takes_builtin_defaults_then_settings_then_overrides(settings):
    settings.RESILIENCE = {"RETRY": {"default": {"attempts": 4}, "http": {"cap": 2.0}}}
    http = policy("http", attempts=6)
    assert (http.attempts, http.backoff.base, http.backoff.cap) == (6, 0.1, 2.0)
    assert policy("mine").attempts == 4


def test_default_sets_what_a_builtin_policy_leaves_and_never_its_own_tuning_as_readme_says(settings):
    settings.RESILIENCE = {"RETRY": {"default": {"attempts": 5, "base": 0.5, "cap": 30, "backoff": "equal_jitter"}}}
    redis = policy("redis")
    assert (redis.attempts, redis.backoff.base, redis.backoff.cap) == (3, 0.01, 0.2)  # README's table of built-ins
    assert type(redis.backoff).__name__ == "EqualJitter"  # "default" reached what the built-in leaves
    assert (policy("mine").attempts, policy("mine").backoff.cap) == (5, 30)


def test_retry_decorator_retries_and_emits_events(settings, caplog):
    settings.RESILIENCE = {
        "HISTORY": False,
        "METRICS": {"SINKS": ["resilience.observability.metrics.InMemorySink"]},
        "RETRY": {"default": FAST},
    }
    fn = failing(2)
    with caplog.at_level(logging.INFO, logger="resilience.retry"):
        assert retry("default")(fn)() == 3
    assert InMemorySink.last.value("resilience.retry.retry", name="default") == 2
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry retry name=default attempt=")]
    assert len(lines) == 1  # the second retry is folded into the next summary line (metrics count both)


def test_give_up_is_logged_as_a_warning(settings, caplog):
    settings.RESILIENCE = {"HISTORY": False, "RETRY": {"default": {**FAST, "attempts": 2}}}
    with caplog.at_level(logging.INFO, logger="resilience.retry"), pytest.raises(ConnectionError):
        retry("default").call(failing(5))
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning[0].getMessage() == "retry give_up name=default attempt=2 reason=attempts error=ConnectionError"


def test_postgres_policy_does_not_retry_errors_it_does_not_recognise(settings):
    settings.RESILIENCE = {"RETRY": {"postgres": FAST}}
    fn = failing(1, exc=ConnectionError)  # not a database error
    with pytest.raises(ConnectionError):
        retry("postgres").call(fn)
    assert fn.state["n"] == 1


def test_explicit_policy_objects_work_too():
    fn = failing(3)
    assert retry(RetryPolicy(attempts=4, backoff=Constant(0.0), budget=None)).call(fn) == 4


def test_no_retry_while_the_named_breaker_is_open(settings):
    settings.RESILIENCE = {"HISTORY": False, "RETRY": {"default": {**FAST, "breaker": "dep"}}}
    circuit_breaker("dep").force_open()
    fn = failing(5)
    with pytest.raises(ConnectionError):
        retry("default").call(fn)
    assert fn.state["n"] == 1


@pytest.mark.parametrize(("value", "message"), [
    ({"http": {"atempts": 3}}, 'RESILIENCE["RETRY"]["http"] has unknown key(s) \'atempts\''),
    ({"http": {"backoff": "random"}}, 'RESILIENCE["RETRY"]["http"]["backoff"] must be one of'),
    ({"http": {"backoff": ["full_jitter"]}}, 'RESILIENCE["RETRY"]["http"]["backoff"] must be one of'),
    ({"http": {"base": -1}}, 'RESILIENCE["RETRY"]["http"]["base"] must be a number from 0 to 3600'),
    ({"http": {"attempts": 0}}, 'RESILIENCE["RETRY"]["http"]["attempts"] must be a whole number from 1 to 100, got 0'),
    ({"http": {"budget": {"ratio": -1}}}, 'RESILIENCE["RETRY"]["http"]["budget"]["ratio"] must be a number from 0 to 10'),
    ({"http": {"budget": {"share": 1}}}, 'RESILIENCE["RETRY"]["http"]["budget"] must be a dict'),
])  # fmt: skip
def test_malformed_retry_settings_name_the_key(settings, value, message):
    settings.RESILIENCE = {"RETRY": value}
    with pytest.raises(ConfigurationError) as err:
        retry("http").call(lambda: None)
    assert message in str(err.value)


def test_retry_of_something_that_is_not_a_policy_is_refused():
    with pytest.raises(ConfigurationError, match="retry\\(\\) takes a policy name or a RetryPolicy"):
        retry(3)


def test_retry_budget_is_shared_by_every_worker_through_redis(test_redis, key_prefix):
    client = redis.Redis.from_url(django_settings.TEST_REDIS_URL)
    one = RedisRetryBudget(client, "svc", prefix=key_prefix, ratio=0.1, floor_per_second=0.0, window=10)
    two = RedisRetryBudget(client, "svc", prefix=key_prefix, ratio=0.1, floor_per_second=0.0, window=10)
    for _ in range(15):
        one.record_call()
    for _ in range(15):
        two.record_call()
    grants = [one.try_retry(), two.try_retry(), one.try_retry(), two.try_retry()]
    assert grants == [True, True, True, False]  # 10 % of 30 calls made in two processes
    assert all(test_redis.ttl(k) > 0 for k in test_redis.scan_iter(f"{key_prefix}:*"))


def test_calls_older_than_the_window_are_not_credited_to_the_shared_budget(test_redis, key_prefix):
    """Found by the four-process AWS budget test's author: a worker whose calls all succeeded kept
    counting them, and its first retry decision of an outage credited them all to that second."""
    from resilience.core.clock import FakeClock

    client = redis.Redis.from_url(django_settings.TEST_REDIS_URL)
    clock = FakeClock()
    budget = RedisRetryBudget(client, "svc", prefix=key_prefix, ratio=0.1, floor_per_second=0.0, window=10, clock=clock)
    for _ in range(3_600):  # an hour of calls that all succeeded: no retry decision, no round trip
        for _call in range(10):
            budget.record_call()
        clock.advance(1.0)
    assert len(budget._pending) == 10  # one count per second of the window, not one per second of the hour
    grants = sum(budget.try_retry() for _ in range(50))
    assert grants == 9  # 10 % of the 90 calls of the window's last 9 seconds (Redis keeps seconds after now - window)
    sent = [int(v) for f, v in test_redis.hgetall(budget.keys.budget).items() if f.startswith(b"c:")]
    assert sent == [90]


def test_an_outage_cannot_multiply_load_retries_stay_within_the_budget(settings, key_prefix):
    settings.RESILIENCE = {
        "HISTORY": False,
        "REDIS": django_settings.TEST_REDIS_URL,
        "KEY_PREFIX": key_prefix,
        "RETRY": {"default": {**FAST, "attempts": 5, "budget": {"ratio": 0.2, "floor_per_second": 0.1, "window": 10}}},
    }
    attempts = {"n": 0}

    def down():
        attempts["n"] += 1
        raise ConnectionError

    handle = retry("default")
    for _ in range(100):
        with pytest.raises(ConnectionError):
            handle.call(down)
    assert attempts["n"] <= 100 + 0.2 * 100 + 1  # without a budget: 500


def test_retry_budget_falls_back_to_local_when_redis_is_down():
    from resilience.storage.redis.client import connect
    from tests.conftest import free_port

    dead = connect(f"redis://127.0.0.1:{free_port()}/0", 0.05)
    budget = RedisRetryBudget(dead, "svc", prefix="x", ratio=0.5, floor_per_second=0.0, window=10)
    for _ in range(4):
        budget.record_call()
    started = time.monotonic()
    assert [budget.try_retry(), budget.try_retry(), budget.try_retry()] == [True, True, False]
    assert time.monotonic() - started < 1.0
