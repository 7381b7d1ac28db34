"""The limiter: rates, keys, and each fail mode with a real redis-server killed mid-run."""

import logging
import time

import pytest

from resilience.exceptions import ConfigurationError
from resilience.ratelimit.limiter import Limiter, normalise, parse_rate, policy, storage_key
from resilience.storage.redis.client import connect
from resilience.storage.redis.ratelimit import RedisRateLimitStore
from tests.waiting import wait_for


@pytest.mark.parametrize(("text", "expected"), [
    ("100/min", (100, 60.0, 100)), ("5/s", (5, 1.0, 5)), ("1000/day", (1000, 86400.0, 1000)),
    ("10/5s;burst=20", (10, 5.0, 20)), ("3/h; burst = 1", (3, 3600.0, 1)), (" 7 / minute ", (7, 60.0, 7)),
])  # fmt: skip
def test_rates_in_drf_syntax_with_an_optional_burst(text, expected):
    assert parse_rate(text, "x") == expected


@pytest.mark.parametrize(
    "text",
    ["", "100", "100/", "-1/min", "1/week", "1/0s", "1e3/min", "१०/min", None, 5, "1/min;burst=x", "1/min;burst=0",
     "0/min;burst=3"],
)  # fmt: skip
def test_malformed_rates_are_a_clear_error(text):
    expected = "must be a rate like|burst of at least 1|takes no burst|period of at least one second"
    with pytest.raises(ConfigurationError, match=expected):
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
    from resilience.ratelimit.limiter import _cached_key

    before = _cached_key.cache_info().currsize
    assert storage_key("pfx", "login:user", "x" * 10_000) == storage_key("pfx", "login:user", "X" * 10_000)
    assert _cached_key.cache_info().currsize == before


def test_a_rate_of_zero_refuses_everything_without_consuming_other_limits():
    """DRF and django-ratelimit read "0/min" as "refuse everything"; so does this limiter."""
    assert parse_rate("0/min", "x") == (0, 60.0, 0)
    limiter = Limiter(None)
    closed, other = policy("ip", "0/min", "x"), policy("tenant", "1/min", "x")
    decision = limiter.hit([(other, "t"), (closed, "1.2.3.4")], "pfx")
    assert not decision.allowed and decision.retry_after == 60.0
    assert limiter.hit([(other, "t")], "pfx").allowed  # the refused request consumed nothing from "tenant"


def test_policies_configured_in_different_places_never_share_a_key():
    middleware, drf = policy("ip", "1000/min", "x", space="mw"), policy("ip", "100/min", "x", space="drf")
    assert middleware.limit("1.2.3.4", "pfx").key != drf.limit("1.2.3.4", "pfx").key


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("victim3", "victim3"),
        ("victim3" + " " * 60, "victim3"),
        ("\tVICTIM3\n", "victim3"),
        ("ｖｉｃｔｉｍ３", "victim3"),  # fullwidth: NFKC
        ("vic\u200btim3", "victim3"),  # zero-width space
        ("vic\u00adtim3\u200d", "victim3"),  # soft hyphen, zero-width joiner
        ("\u202evictim3", "victim3"),  # right-to-left override
        ("VİCTİM3".replace("İ", "I"), "victim3"),
        ("Straße", "strasse"),  # case folding, not lower()
        (12345, "12345"),  # a JSON number: DRF's CharField makes it "12345"
        (12.5, "12.5"),
        (["victim3"], '["victim3"]'),  # refused by the serializer; still counted, as its JSON
        ({"a": 1}, '{"a": 1}'),
        (True, "true"),
        (None, None),
        ("", None),
        ("   ", None),
    ],
)
def test_identities_are_normalised_the_same_way_whatever_their_json_type(value, expected):
    from resilience.ratelimit.limiter import identity_text

    assert identity_text(value) == expected


def test_look_alike_letters_of_other_scripts_stay_distinct_identities():
    from resilience.ratelimit.limiter import identity_text

    assert identity_text("vісtim3") != identity_text("victim3")  # Cyrillic і and с: another user to the backend


def test_very_long_identities_are_bounded_before_any_work():
    from resilience.ratelimit.limiter import MAX_IDENTITY, identity_text

    assert len(identity_text("x" * 10_000_000)) == MAX_IDENTITY
    assert len(identity_text(["y" * 100_000])) <= MAX_IDENTITY


def test_a_redis_outage_costs_a_bounded_number_of_log_lines(own_redis, caplog):
    """Once, every decision during an outage was a store_unavailable WARNING (2,200-2,700 lines in 5.5 s)."""
    import logging

    limiter = limiter_on(own_redis)
    rule = policy("ip", {"rate": "100000/min", "fail": "open"}, "x")
    assert limiter.hit([(rule, "a")], "pfx").allowed
    own_redis.kill()
    with caplog.at_level(logging.INFO, logger="resilience"):
        decisions = [limiter.hit([(rule, f"client-{n}")], "pfx").allowed for n in range(2000)]
    assert all(decisions)  # fail open, as configured
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("resilience.")]
    unavailable = [line for line in lines if line.startswith("ratelimit store_unavailable")]
    transitions = [line for line in lines if line.startswith("breaker transition")]
    assert len(unavailable) == 1  # the first; the rest are folded into one summary a minute
    assert len(lines) <= len(transitions) + 2 and len(transitions) <= 4  # redis:ratelimit opens, probes, opens...
