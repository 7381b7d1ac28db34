"""Every breaker setting at both ends of its range, the documented defaults, and open_duration's growth."""

import pytest

from resilience.core.breaker_config import DEFAULT_CONFIG, DEFAULTS, BreakerConfig
from resilience.core.validation import reject_unknown_keys
from resilience.exceptions import ConfigurationError

PATH = 'RESILIENCE["BREAKERS"]["payments"]'


def test_the_documented_defaults():
    assert DEFAULTS == {
        "failure_rate": 50,
        "minimum_calls": 20,
        "window": 60,
        "window_type": "time",
        "open_for": 30,
        "open_for_multiplier": 1.0,
        "open_for_max": None,
        "half_open_calls": 3,
        "slow_call": None,
        "slow_rate": 100,
        "timeout": None,
        "ignore": (),
    }
    assert BreakerConfig() == DEFAULT_CONFIG
    assert {key: getattr(DEFAULT_CONFIG, key) for key in DEFAULTS} == DEFAULTS


@pytest.mark.parametrize(
    "values",
    [
        {"failure_rate": 1}, {"failure_rate": 100}, {"failure_rate": 0.5 + 0.5},
        {"minimum_calls": 1}, {"minimum_calls": 1_000_000},
        {"window": 1}, {"window": 3600}, {"window_type": "count", "window": 100_000},
        {"open_for": 0.001}, {"open_for": 86_400},
        {"open_for_multiplier": 1}, {"open_for_multiplier": 100},
        {"open_for": 60, "open_for_max": 60}, {"open_for_max": 86_400},
        {"half_open_calls": 1}, {"half_open_calls": 1000},
        {"slow_rate": 1}, {"slow_rate": 100},
        {"slow_call": 0.000_001}, {"slow_call": 86_400}, {"timeout": 0.000_001}, {"timeout": 86_400},
        {"ignore": (KeyError,)}, {"ignore": (KeyboardInterrupt,)},
    ],
)  # fmt: skip
def test_each_setting_at_the_ends_of_its_range_is_accepted(values):
    config = BreakerConfig.from_mapping(values, PATH)
    assert all(getattr(config, key) == value for key, value in values.items())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"failure_rate": 0.999}, '["failure_rate"] must be between 1 and 100, got 0.999'),
        ({"failure_rate": 100.001}, '["failure_rate"] must be between 1 and 100, got 100.001'),
        ({"minimum_calls": 0}, '["minimum_calls"] must be between 1 and 1e+06, got 0'),
        ({"minimum_calls": 1_000_001}, '["minimum_calls"] must be between 1 and 1e+06, got 1000001'),
        ({"minimum_calls": 20.0}, '["minimum_calls"] must be a whole number, got 20.0'),
        ({"window": 3601}, '["window"] must be between 1 and 3600, got 3601'),
        ({"window_type": "count", "window": 100_001}, '["window"] must be between 1 and 100000, got 100001'),
        ({"window_type": "count", "window": 10},
         '["window"] of 10 calls can never hold minimum_calls (20): the breaker would never open; '
         "make the window at least minimum_calls"),
        ({"window": True}, '["window"] must be a number, got True'),
        ({"window": 60.0}, '["window"] must be a whole number, got 60.0'),
        ({"open_for": 0.0009}, '["open_for"] must be between 0.001 and 86400, got 0.0009'),
        ({"open_for": 86_401}, '["open_for"] must be between 0.001 and 86400, got 86401'),
        ({"open_for_multiplier": 101}, '["open_for_multiplier"] must be between 1 and 100, got 101'),
        ({"open_for_max": 86_401}, '["open_for_max"] must be between 30 and 86400, got 86401'),
        ({"open_for_max": 29.9}, '["open_for_max"] must be between 30 and 86400, got 29.9'),
        ({"half_open_calls": 1001}, '["half_open_calls"] must be between 1 and 1000, got 1001'),
        ({"half_open_calls": 2.0}, '["half_open_calls"] must be a whole number, got 2.0'),
        ({"slow_rate": 0}, '["slow_rate"] must be between 1 and 100, got 0'),
        ({"slow_rate": 101}, '["slow_rate"] must be between 1 and 100, got 101'),
        ({"slow_call": 0}, '["slow_call"] must be between 1e-06 and 86400, got 0'),
        ({"slow_call": 86_401}, '["slow_call"] must be between 1e-06 and 86400, got 86401'),
        ({"timeout": 86_401}, '["timeout"] must be between 1e-06 and 86400, got 86401'),
        ({"timeout": float("nan")}, '["timeout"] must be a number, got nan'),
        ({"ignore": KeyError}, "[\"ignore\"] must be a list of exception classes, got <class 'KeyError'>"),
        ({"ignore": (KeyError, int)}, "[\"ignore\"] must be a list of exception classes, got (<class 'KeyError'>, <class 'int'>)"),  # noqa: E501
        ({"ignore": (KeyError(),)}, "[\"ignore\"] must be a list of exception classes, got (KeyError(),)"),
    ],
)  # fmt: skip
def test_each_setting_just_outside_its_range_is_refused_with_its_bounds(values, message):
    with pytest.raises(ConfigurationError) as err:
        BreakerConfig.from_mapping(values, PATH)
    assert str(err.value) == PATH + message


def test_a_direct_config_is_validated_under_the_name_breaker():
    with pytest.raises(ConfigurationError) as err:
        BreakerConfig(failure_rate=0)
    assert str(err.value) == 'breaker["failure_rate"] must be between 1 and 100, got 0'


def test_a_list_or_set_of_exception_classes_becomes_a_tuple():
    assert BreakerConfig.from_mapping({"ignore": [KeyError]}, PATH).ignore == (KeyError,)
    assert BreakerConfig.from_mapping({"ignore": {KeyError}}, PATH).ignore == (KeyError,)


def test_settings_that_are_not_a_dict_name_their_type():
    with pytest.raises(ConfigurationError) as err:
        BreakerConfig.from_mapping(["failure_rate", 50], PATH)  # type: ignore[arg-type]
    assert str(err.value) == f"{PATH} must be a dict, got list"


def test_without_a_base_the_defaults_fill_in():
    config = BreakerConfig.from_mapping({"failure_rate": 10}, PATH)
    assert config == BreakerConfig(failure_rate=10)


def test_with_overrides_validates_on_top_of_itself_and_without_overrides_is_itself():
    base = BreakerConfig(open_for=5)
    assert base.with_overrides(PATH) is base
    assert base.with_overrides(PATH, minimum_calls=4) == BreakerConfig(open_for=5, minimum_calls=4)
    with pytest.raises(ConfigurationError, match=r'^RESILIENCE\["BREAKERS"\]\["payments"\]\["minimum_calls"\]'):
        base.with_overrides(PATH, minimum_calls=0)


def test_open_duration_of_the_first_trip_is_open_for_and_grows_by_the_multiplier():
    c = BreakerConfig(open_for=2, open_for_multiplier=2)
    assert [c.open_duration(n) for n in (0, 1, 2, 3, 10)] == [2, 2, 4, 8, 1024]


def test_open_duration_without_a_ceiling_stops_at_one_day():
    c = BreakerConfig(open_for=10, open_for_multiplier=100)
    assert [c.open_duration(n) for n in (2, 3, 4)] == [1000, 86_400.0, 86_400.0]


def test_open_duration_growth_stops_at_the_64th_power():
    c = BreakerConfig(open_for=0.001, open_for_multiplier=1.1)
    assert c.open_duration(64) == 0.001 * 1.1**63
    assert c.open_duration(65) == c.open_duration(1_000_000) == 0.001 * 1.1**64


def test_open_duration_below_a_ceiling_is_the_grown_value():
    c = BreakerConfig(open_for=3, open_for_multiplier=2, open_for_max=100)
    assert [c.open_duration(n) for n in (1, 2, 5, 6)] == [3, 6, 48, 96]
    assert c.open_duration(7) == 100


def test_unknown_keys_are_listed_sorted_with_the_known_ones():
    with pytest.raises(ConfigurationError) as err:
        reject_unknown_keys({"b": 1, "a": 2, "ok": 3}, ["ok", "also"], "X")
    assert str(err.value) == "X has unknown key(s) 'a', 'b'; known: also, ok"
    assert reject_unknown_keys({"ok": 1}, ["ok"], "X") is None
