"""The limiter: rates, keys, and each fail mode with a real redis-server killed mid-run."""

import logging
import time

import pytest

from resilience.exceptions import ConfigurationError
from resilience.limiter import Limiter, normalise, parse_rate, policy, storage_key
from resilience.redis_connection import connect
from resilience.storage.ratelimit import RedisRateLimitStore

from .waiting import wait_for


@pytest.mark.parametrize(("text", "expected"), [
    ("100/min", (100, 60.0, 100)), ("5/s", (5, 1.0, 5)), ("1000/day", (1000, 86400.0, 1000)),
    ("10/5s;burst=20", (10, 5.0, 20)), ("3/h; burst = 1", (3, 3600.0, 1)), (" 7 / minute ", (7, 60.0, 7)),
])  # fmt: skip
def test_rates_in_drf_syntax_with_an_optional_burst(text, expected):
    assert parse_rate(text, "x") == expected


@pytest.mark.parametrize(
    "text", ["", "100", "100/", "0/min", "-1/min", "1/week", "1/0s", "1e3/min", "१०/min", None, 5, "1/min;burst=x"]
)
def test_malformed_rates_are_a_clear_error(text):
    with pytest.raises(ConfigurationError, match="must be a rate like|at least 1 request"):
        parse_rate(text, 'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["ip"]')


def test_policy_options_are_validated():
    with pytest.raises(ConfigurationError, match='fail must be one of "open", "closed", "local"'):
        policy("ip", {"rate": "1/s", "fail": "maybe"}, "x")
    with pytest.raises(ConfigurationError, match="unknown key"):
        policy("ip", {"rate": "1/s", "burts": 3}, "x")


@pytest.mark.parametrize(
    ("rate", "message"), [("2000000/s", "finer than one request per microsecond"), ("1/d;burst=400", "lasts over 366 days")]
)
def test_rates_the_microsecond_grid_cannot_hold_are_a_clear_error(rate, message):
    with pytest.raises(ConfigurationError, match=f"rate limit 'ip': .*{message}"):
        policy("ip", rate, 'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["ip"]')


@pytest.mark.parametrize("identity", ["ÄLICE", "älice", " Älice ", "ÄLİCE".replace("İ", "I"), "Ä" + "lice"])
def test_usernames_are_case_and_unicode_folded(identity):
    assert normalise(identity) == "älice"


@pytest.mark.parametrize("identity", ["a:b", "*", "{tag}", "line\nbreak", "x" * 10_000, "ünï", "\x00"])
def test_keys_from_hostile_identities_are_short_hashed_and_share_one_hash_tag(identity):
    key = storage_key("pfx", "tenant", identity)
    assert key.startswith("pfx:rl2:{rl}:") and key.count("{") == 1 and len(key) < 80
    assert "\n" not in key and identity not in key


@pytest.fixture
def own_redis(settings, redis_server):
    settings.RESILIENCE = {"HISTORY": False}
    return redis_server


def limiter_on(server):
    return Limiter(RedisRateLimitStore(connect(server.url, 0.1)))


@pytest.mark.parametrize(
    ("fail", "expected"), [("open", [True] * 4), ("closed", [False] * 4), ("local", [True, True, False, False])]
)
def test_each_fail_mode_when_redis_dies(own_redis, fail, expected):
    limiter = limiter_on(own_redis)
    rule = policy("ip", {"rate": "2/min", "fail": fail}, "x")
    assert limiter.hit([(rule, "198.51.100.9")], "t").allowed  # through Redis: 1 of 2 used there
    own_redis.kill()
    started = time.monotonic()
    answers = [limiter.hit([(rule, "198.51.100.9")], "t") for _ in range(4)]
    assert time.monotonic() - started < 0.5  # REDIS_TIMEOUT-bounded, then the breaker skips Redis
    assert [a.allowed for a in answers] == expected
    if fail == "closed":
        assert answers[0].retry_after == 1.0


def test_decisions_go_back_to_redis_within_two_seconds_of_recovery(own_redis, test_redis):
    limiter = limiter_on(own_redis)
    rule = policy("ip", {"rate": "100/min", "fail": "local"}, "x")
    own_redis.kill()
    for _ in range(5):
        limiter.hit([(rule, "198.51.100.9")], "t")
    own_redis.start()
    back = time.monotonic()
    import redis

    probe = redis.Redis(port=own_redis.port)

    def counted_in_redis():
        limiter.hit([(rule, "198.51.100.9")], "t")
        return bool(list(probe.scan_iter("t:rl2:*")))

    assert wait_for(counted_in_redis, timeout=3.0)
    assert time.monotonic() - back < 2.0


def test_shadow_policies_report_but_never_refuse(own_redis, caplog):
    limiter = limiter_on(own_redis)
    rule = policy("ip", {"rate": "1/min", "shadow": True}, "x")
    with caplog.at_level(logging.INFO, logger="resilience"):
        answers = [limiter.hit([(rule, "198.51.100.9")], "t").allowed for _ in range(3)]
    assert answers == [True, True, True]
    assert any("ratelimit shadow_rejected" in r.getMessage() for r in caplog.records)


def test_long_hostile_identities_are_hashed_but_never_kept_in_the_key_cache():
    from resilience.limiter import _cached_key

    before = _cached_key.cache_info().currsize
    assert storage_key("pfx", "login:user", "x" * 10_000) == storage_key("pfx", "login:user", "X" * 10_000)
    assert _cached_key.cache_info().currsize == before
