"""The RESILIENCE settings object and the system checks that guard it."""

import pytest
import redis
from django.conf import settings as django_settings
from django.core.checks import run_checks

from resilience.breakers.registry import breakers
from resilience.conf import resilience_settings
from resilience.exceptions import ConfigurationError
from resilience.observability.metrics import MetricsSink


def check_ids():
    return [m.id for m in run_checks() if m.id.startswith("resilience.")]


@pytest.fixture(autouse=True)
def urlconf_imported():
    """The demo URLconf declares breakers at import (which reads the settings): import it while they
    are valid, so each test's own settings reach the checks instead of the import."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018


def test_defaults_apply_when_the_setting_is_absent(settings):
    del settings.RESILIENCE
    assert resilience_settings.REDIS is None
    assert resilience_settings.REDIS_TIMEOUT == 0.1
    assert resilience_settings.breaker_config("anything").failure_rate == 50


def test_named_breaker_inherits_the_default_entry(settings):
    settings.RESILIENCE = {"BREAKERS": {"default": {"open_for": 5}, "payments": {"failure_rate": 20}}}
    config = resilience_settings.breaker_config("payments")
    assert (config.open_for, config.failure_rate) == (5, 20)
    assert resilience_settings.breaker_config("other").failure_rate == 50


def test_changing_the_setting_rebuilds_breakers(settings):
    settings.RESILIENCE = {"HISTORY": False, "BREAKERS": {"x": {"open_for": 5}}}
    assert breakers.get_or_create("x").config.open_for == 5
    settings.RESILIENCE = {"HISTORY": False, "BREAKERS": {"x": {"open_for": 9}}}
    assert breakers.get_or_create("x").config.open_for == 9


def test_every_bad_key_is_reported_at_once_one_message_each(settings):
    """Found by a README audit: the first bad plain key hid every other one (a deploy cycle each)."""
    settings.RESILIENCE = {
        "REDIS_TIMEOUT": 0,
        "SYNC_INTERVAL": 0,
        "BREAKERS": {"x": {"failure_rate": 0}},
        "RETRY": {"http": {"attempts": 0}},
        "RATE_LIMITS": {"ip": "lots"},
        "ENTRA": {"max_staleness": -1},
    }
    found = {(m.id, m.msg.split(" must ")[0]) for m in run_checks() if m.id.startswith("resilience.E")}
    assert found == {
        ("resilience.E001", 'RESILIENCE["REDIS_TIMEOUT"]'),
        ("resilience.E001", 'RESILIENCE["SYNC_INTERVAL"]'),
        ("resilience.E001", 'RESILIENCE["BREAKERS"]["x"]["failure_rate"]'),
        ("resilience.E001", 'RESILIENCE["RETRY"]["http"]["attempts"]'),
        ("resilience.E012", 'RESILIENCE["RATE_LIMITS"]["ip"] rate'),
        ("resilience.E001", 'RESILIENCE["ENTRA"]["max_staleness"]'),
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"REDIS": 6379}, 'RESILIENCE["REDIS"] must be a cache alias or a redis:// URL'),
        ({"REDIS": "  "}, 'RESILIENCE["REDIS"] must be'),
        ({"REDIS_TIMEOUT": 0}, 'RESILIENCE["REDIS_TIMEOUT"] must be a number above 0'),
        ({"REDIS_TIMEOUT": float("nan")}, 'RESILIENCE["REDIS_TIMEOUT"]'),
        ({"SYNC_INTERVAL": "fast"}, 'RESILIENCE["SYNC_INTERVAL"]'),
        ({"KEY_PREFIX": "a{b}"}, 'RESILIENCE["KEY_PREFIX"] must be 1-64 printable characters'),
        ({"KEY_PREFIX": "line\nbreak"}, 'RESILIENCE["KEY_PREFIX"]'),
        ({"BREAKERS": []}, 'RESILIENCE["BREAKERS"] must be a dict'),
        (
            {"BREAKERS": {"payments": {"failure_rate": 0}}},
            'RESILIENCE["BREAKERS"]["payments"]["failure_rate"] must be between 1 and 100',
        ),
        ({"BREAKERS": {"payments": {"ignore": ["no.such.Error"]}}}, "names 'no.such.Error', which cannot be imported"),
        ({"BREAKERS": {"payments": {"ignore": ["os.NoSuchError"]}}}, "cannot be imported"),
        ({"BREAKERS": {"payments": {"ignore": ["os.path"]}}}, "must name exception classes"),
        ({"BREAKERS": {"payments": {"ignore": ["os.getcwd"]}}}, "must name exception classes"),
        ({"BREAKERS": {1: {}}}, "keys must be breaker names"),
        ({"BREAKERS": {"pay\nments": {}}}, 'RESILIENCE["BREAKERS"]: a breaker name must be 1-200 printable characters'),
        ({"BREAKERS": {"p" * 201: {}}}, "a breaker name must be 1-200 printable characters"),  # broke `breakers list`
        ({"BREAKERS": {"x": {"window_type": "count", "window": 10}}}, "can never hold minimum_calls (20)"),
        ({"HISTORY": "yes"}, 'RESILIENCE["HISTORY"] must be True or False'),
        ({"FALLBACK_MAX_STALE_KEYS": 0}, 'RESILIENCE["FALLBACK_MAX_STALE_KEYS"] must be a whole number from 1 to 1000000'),
        ({"BREAKER": {}}, "RESILIENCE has unknown key(s) 'BREAKER'"),
    ],
)
def test_malformed_settings_fail_with_a_message_naming_the_key(settings, value, message):
    settings.RESILIENCE = value
    with pytest.raises(ConfigurationError) as err:
        resilience_settings.REDIS  # noqa: B018
    assert message in str(err.value)
    errors = [m for m in run_checks() if m.id == "resilience.E001"]
    assert len(errors) == 1 and message in errors[0].msg


def test_setting_that_is_not_a_dict_is_refused(settings):
    settings.RESILIENCE = ["REDIS"]
    with pytest.raises(ConfigurationError, match="RESILIENCE must be a dict"):
        resilience_settings.REDIS  # noqa: B018


def test_ignore_accepts_dotted_paths(settings):
    settings.RESILIENCE = {"BREAKERS": {"p": {"ignore": ["django.core.exceptions.PermissionDenied"]}}}
    from django.core.exceptions import PermissionDenied

    assert resilience_settings.breaker_config("p").ignore == (PermissionDenied,)


def test_in_process_state_without_debug_warns_w001(settings):
    settings.DEBUG = False
    settings.RESILIENCE = {"REDIS": None}
    assert check_ids() == ["resilience.W001"]
    settings.DEBUG = True
    assert check_ids() == []


def test_redis_naming_a_missing_cache_is_e002(settings):
    settings.RESILIENCE = {"REDIS": "sessions"}
    assert check_ids() == ["resilience.E002"]


def test_redis_naming_a_cache_that_is_not_django_redis_is_e003(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "builtin": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": django_settings.TEST_REDIS_URL},
    }
    settings.RESILIENCE = {"REDIS": "builtin"}
    assert check_ids() == ["resilience.E003"]


def test_a_django_redis_alias_or_url_passes_the_checks(settings):
    settings.RESILIENCE = {"REDIS": "default"}
    assert check_ids() == []
    settings.RESILIENCE = {"REDIS": django_settings.TEST_REDIS_URL}
    assert check_ids() == []


def test_a_django_redis_alias_shares_the_cache_server_with_short_timeouts(settings, key_prefix):
    settings.RESILIENCE = {"REDIS": "default", "KEY_PREFIX": key_prefix, "REDIS_TIMEOUT": 0.05, "HISTORY": False}
    store = breakers.store
    kwargs = store._client.connection_pool.connection_kwargs
    expected = redis.Redis.from_url(django_settings.TEST_REDIS_URL).connection_pool.connection_kwargs
    assert (kwargs["port"], kwargs["db"], kwargs["socket_timeout"]) == (expected["port"], expected["db"], 0.05)
    breakers.get_or_create("via-alias").force_open()
    assert breakers.get("via-alias").state == "forced_open"


@pytest.mark.parametrize(
    "path", ["no.such.module.resolver", "resilience.integrations.entra.claims.no_such_function", "resilience.conf.ROOT"]
)
def test_a_broken_tenant_resolver_is_e014_at_start_up_and_no_tenant_at_request_time(settings, path):
    from django.core.checks import run_checks
    from django.test import RequestFactory

    from resilience.tenancy import tenant_of

    settings.RESILIENCE = {"HISTORY": False, "TENANT_RESOLVER": path}
    assert [m.id for m in run_checks() if m.id == "resilience.E014"] == ["resilience.E014"]
    assert tenant_of(RequestFactory().get("/")) is None  # never a 500 per request


def test_a_malformed_setting_is_reported_once_as_e001(settings):
    from django.core.checks import run_checks

    settings.RESILIENCE = {"BREAKERS": {"payments": {"ignore": ["payments.errors.CardDeclined"]}}}
    ids = [m.id for m in run_checks() if m.id.startswith("resilience.E")]
    assert ids == ["resilience.E001"]  # not E001, E011 and E012 with the same message


@pytest.mark.parametrize(
    ("value", "check_id", "message"),
    [
        ({"RETRY": {"http": {"atempts": 3}}}, "resilience.E001", 'RESILIENCE["RETRY"]["http"] has unknown key(s) \'atempts\''),
        ({"RETRY": {"db": {"budget": {"ratio": 11}}}}, "resilience.E001", 'RESILIENCE["RETRY"]["db"]["budget"]["ratio"]'),
        ({"RETRY": []}, "resilience.E001", 'RESILIENCE["RETRY"] must be a dict'),
        ({"ENTRA": {"max_stalenes": 60}}, "resilience.E001", "RESILIENCE[\"ENTRA\"] has unknown key(s) 'max_stalenes'"),
        ({"ENTRA": {"retry_interval": 0}}, "resilience.E001", 'RESILIENCE["ENTRA"]["retry_interval"] must be a number above 0'),
        ({"METRICS": {"SINKS": "x"}}, "resilience.E001", 'RESILIENCE["METRICS"] must be a dict with a list "SINKS"'),
        (
            {"METRICS": {"SINKS": ["resilience.observability.metrics.InMemorySnk"]}},
            "resilience.E001",
            'RESILIENCE["METRICS"]["SINKS"][0] names \'resilience.observability.metrics.InMemorySnk\', which cannot be imported',
        ),
        (
            {"METRICS": {"SINKS": ["resilience.conf.ResilienceSettings"]}},
            "resilience.E001",
            "which is not a MetricsSink subclass",
        ),
        ({"ROUTES": [{"path": "/a/", "timout": 1}]}, "resilience.E011", "RESILIENCE[\"ROUTES\"][0] has unknown key(s) 'timout'"),
    ],
)
def test_a_typo_in_a_parsed_setting_is_reported_once_at_start_up_naming_the_key(settings, value, check_id, message):
    settings.RESILIENCE = {"HISTORY": False, **value}
    errors = [m for m in run_checks() if m.id.startswith("resilience.E") and m.id != "resilience.E012"]
    assert [(m.id, message in m.msg) for m in errors] == [(check_id, True)]
    resilience_settings.REDIS  # noqa: B018 - the other settings still work: one feature's typo breaks that feature


def test_every_problem_is_reported_with_its_own_id(settings):
    settings.RESILIENCE = {"RETRY": {"x": {"attempts": 0}}, "ENTRA": {"x": 1}, "ROUTES": "oops"}
    ids = sorted(m.id for m in run_checks() if m.id in ("resilience.E001", "resilience.E011"))
    assert ids == ["resilience.E001", "resilience.E001", "resilience.E011"]


def test_a_typo_in_retry_is_a_clear_error_when_the_policy_is_used(settings):
    from resilience import retry

    settings.RESILIENCE = {"HISTORY": False, "RETRY": {"http": {"backof": "constant"}}}
    with pytest.raises(ConfigurationError, match=r'RESILIENCE\["RETRY"\]\["http"\] has unknown key'):
        retry("http").call(lambda: None)


def test_a_broken_metrics_sink_never_breaks_a_call(settings, caplog):
    from resilience.core.event import Event
    from resilience.observability.events import emit

    settings.RESILIENCE = {"HISTORY": False, "METRICS": {"SINKS": ["no.such.Sink"]}}
    emit(Event("breaker", "rejected", "x", {}))  # no ImportError into the protected call
    assert any("no metrics sinks" in r.getMessage() for r in caplog.records)


def test_a_sink_that_fails_to_build_is_left_out(settings, caplog):
    settings.RESILIENCE = {"HISTORY": False, "METRICS": {"SINKS": ["tests.test_conf_and_checks.BrokenSink"]}}
    from resilience.observability.events import sinks

    assert sinks() == []
    assert any("could not be built" in r.getMessage() for r in caplog.records)


def test_a_typo_in_routes_is_a_clear_error_at_request_time(settings):
    from resilience.middleware import route_table

    settings.RESILIENCE = {"HISTORY": False, "ROUTES": [{"path": "/a/", "timout": 1}]}
    with pytest.raises(ConfigurationError, match=r'RESILIENCE\["ROUTES"\]\[0\] has unknown key'):
        route_table()


def test_entra_settings_parse_without_django_auth_adfs():
    from resilience.integrations.entra.settings import ENTRA_DEFAULTS, parse_entra

    assert parse_entra({}, "E") == ENTRA_DEFAULTS
    assert parse_entra({"retry_interval": 2}, "E")["retry_interval"] == 2


def test_every_setting_is_validated_or_parsed():
    from resilience.conf import DEFAULTS, PARSERS, VALIDATORS

    owned_elsewhere = {"BREAKERS", "RATE_LIMITS", "TRUSTED_PROXIES", "TENANT_RESOLVER"}  # see VALIDATORS' comment
    assert set(DEFAULTS) - set(VALIDATORS) - set(PARSERS) <= owned_elsewhere


class BrokenSink(MetricsSink):
    def __init__(self) -> None:
        raise RuntimeError("no connection to the metrics server")


def test_a_breaker_declared_at_import_under_malformed_settings_leaves_the_report_to_e001(settings):
    """A URLconf that declares breakers at import (``@circuit_breaker`` on a view) is imported by
    the checks themselves: a malformed RESILIENCE must come out as E001, not as a traceback."""
    settings.RESILIENCE = {"REDIS": 6379}
    assert breakers.declare("declared-while-broken") == "declared-while-broken"
    assert [m.id for m in run_checks() if m.id.startswith("resilience.")] == ["resilience.E001"]
