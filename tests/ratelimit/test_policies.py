"""Rate policies: DRF-syntax rates, options, the microsecond grid, and RESILIENCE["RATE_LIMITS"]."""

import re

import pytest

from resilience.exceptions import ConfigurationError
from resilience.ratelimit.policies import parse_rate, parse_rate_limits, policy


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
    with pytest.raises(ConfigurationError, match="shadow must be True or False, got 'false'"):
        policy("ip", {"rate": "1/s", "shadow": "false"}, "x")  # a truthy string would turn shadow on


@pytest.mark.parametrize("typo", ["", {}, 0, []])
def test_an_empty_ip_limit_is_an_error_never_no_limit(typo):
    with pytest.raises(ConfigurationError, match=r'RATE_LIMITS"\]\["ip"\]'):
        parse_rate_limits({"ip": typo}, 'RESILIENCE["RATE_LIMITS"]')
    assert parse_rate_limits({"ip": None}, 'RESILIENCE["RATE_LIMITS"]').ip is None  # None: no limit, on purpose


@pytest.mark.parametrize(
    ("rate", "message"), [("2000000/s", "finer than one request per microsecond"), ("1/d;burst=400", "lasts over 366 days")]
)
def test_rates_the_microsecond_grid_cannot_hold_are_a_clear_error(rate, message):
    with pytest.raises(ConfigurationError, match=f"rate limit 'ip': .*{message}"):
        policy("ip", rate, 'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["ip"]')


def test_policies_configured_in_different_places_never_share_a_key():
    middleware, drf = policy("ip", "1000/min", "x", space="mw"), policy("ip", "100/min", "x", space="drf")
    assert middleware.limit("1.2.3.4", "pfx").key != drf.limit("1.2.3.4", "pfx").key


def test_rate_limits_are_parsed_into_settings_naming_the_path():
    parsed = parse_rate_limits({"ip": "10/s", "fail": "local", "ipv6_prefix": 48}, "P")
    assert (parsed.fail, parsed.ipv6_prefix, parsed.ip.name, parsed.ip.fail, parsed.ip.space) == (
        "local",
        48,
        "ip",
        "local",
        "mw",
    )
    assert parse_rate_limits({}, "P").ip is None
    for value, message in [([], "P must be a dict"), ({"ipv6_prefix": True}, 'P["ipv6_prefix"] must be a whole number')]:
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            parse_rate_limits(value, "P")
