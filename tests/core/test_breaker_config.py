import pytest

from resilience.core.breaker_config import BreakerConfig
from resilience.exceptions import ConfigurationError

PATH = 'RESILIENCE["BREAKERS"]["payments"]'


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"failure_rate": 0}, f'{PATH}["failure_rate"] must be between 1 and 100, got 0'),
        ({"failure_rate": 101}, "must be between 1 and 100"),
        ({"failure_rate": float("nan")}, '["failure_rate"] must be a number'),
        ({"failure_rate": "50"}, '["failure_rate"] must be a number'),
        ({"minimum_calls": 2.5}, '["minimum_calls"] must be a whole number'),
        ({"minimum_calls": True}, '["minimum_calls"] must be a number'),
        ({"window_type": "sliding"}, "must be 'time' or 'count'"),
        ({"window": 0}, '["window"] must be between 1'),
        ({"open_for": -1}, '["open_for"] must be between'),
        ({"open_for_multiplier": 0.5}, '["open_for_multiplier"] must be between 1'),
        ({"open_for": 60, "open_for_max": 10}, '["open_for_max"] must be between 60'),
        ({"half_open_calls": 0}, '["half_open_calls"]'),
        ({"timeout": 0}, '["timeout"]'),
        ({"slow_call": "fast"}, '["slow_call"] must be a number'),
        ({"ignore": ["ValueError"]}, '["ignore"] must be a list of exception classes'),
        ({"failure_rat": 50}, "unknown key(s) 'failure_rat'"),
    ],
)
def test_bad_breaker_settings_name_the_key(values, message):
    with pytest.raises(ConfigurationError) as err:
        BreakerConfig.from_mapping(values, PATH)
    assert message in str(err.value)


def test_settings_that_are_not_a_dict_are_refused():
    with pytest.raises(ConfigurationError, match="must be a dict"):
        BreakerConfig.from_mapping(["failure_rate", 50], PATH)  # type: ignore[arg-type]


def test_named_config_inherits_from_base_and_overrides():
    base = BreakerConfig.from_mapping({"open_for": 5, "minimum_calls": 3}, "default")
    named = BreakerConfig.from_mapping({"minimum_calls": 10}, PATH, base=base)
    assert (named.open_for, named.minimum_calls, named.failure_rate) == (5, 10, 50)


def test_open_duration_grows_exponentially_up_to_the_ceiling():
    c = BreakerConfig(open_for=2, open_for_multiplier=3, open_for_max=50)
    assert [c.open_duration(n) for n in (1, 2, 3, 4, 100_000)] == [2, 6, 18, 50, 50]


def test_open_duration_without_growth_is_constant():
    assert BreakerConfig(open_for=7).open_duration(1000) == 7
