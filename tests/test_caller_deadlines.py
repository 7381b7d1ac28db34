"""A caller's deadline is not evidence against a dependency: short X-Request-Timeouts cannot open a
shared breaker, whoever sends them; and only trusted peers may shorten a deadline, never below the floor."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import settings as django_settings
from django.test import Client

from resilience import DeadlineExceeded, deadline
from resilience.breakers.registry import breakers
from resilience.exceptions import CallTimeout

from .live import LiveServer

MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "resilience.middleware.ResilienceMiddleware"]


def live_settings(key_prefix, **resilience):
    return {
        "ROOT_URLCONF": "tests.urls_live",
        "MIDDLEWARE": MIDDLEWARE,
        "RESILIENCE": {
            "HISTORY": False,
            "REDIS": django_settings.TEST_REDIS_URL,
            "KEY_PREFIX": key_prefix,
            "BREAKERS": {"default": {"minimum_calls": 5, "failure_rate": 50, "window": 60, "open_for": 30}},
            "ROUTES": [{"path": "*", "timeout": 5}],
            "TRUSTED_PROXIES": ["127.0.0.1/32"],  # the header comes from a trusted proxy: still harmless
            **resilience,
        },
    }


@pytest.mark.django_db(transaction=True)
def test_short_caller_deadlines_never_open_the_database_breaker_in_a_real_server(settings, key_prefix):
    """The reviewer's reproduction: 40 requests with X-Request-Timeout: 0.05 to a 0.2 s query opened
    ``postgres:default`` for every worker. Now each gets its own 504 and the breaker stays closed."""
    overrides = live_settings(key_prefix)
    settings.RESILIENCE = overrides["RESILIENCE"]
    with LiveServer(overrides, workers=4) as server:

        def cut_short(_):
            started = time.monotonic()
            response = requests.get(server.url + "/slow-query/", headers={"X-Request-Timeout": "0.05"}, timeout=10)
            return response.status_code, time.monotonic() - started

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(cut_short, range(40)))
        assert [code for code, _ in results] == [504] * 40
        # TIMEOUT_HEADER_FLOOR: 0.05 was raised to 0.1 s (the statement_timeout grid may end it up to 5 % early)
        assert min(took for _, took in results) >= 0.095
        assert requests.get(server.url + "/slow-query/", timeout=10).status_code == 200  # everyone else: served
    assert breakers.get("postgres:default").state == "closed"


def test_a_call_cut_by_the_deadline_counts_neither_as_success_nor_failure(settings):
    breaker = breakers.get_or_create("dep", minimum_calls=2, failure_rate=50)
    for _ in range(10):
        with pytest.raises(DeadlineExceeded), deadline(0.001):
            breaker.call(lambda: (_ for _ in ()).throw(DeadlineExceeded()))
    assert breaker.local_stats().calls == 0
    assert breaker.state == "closed"


def test_an_error_raised_once_the_deadline_passed_is_the_deadlines_not_the_dependencys(settings):
    breaker = breakers.get_or_create("dep2", minimum_calls=2, failure_rate=50)

    def socket_timeout_cut_to_the_deadline():
        time.sleep(0.02)
        raise TimeoutError("read timed out")  # an adapter's own timeout, cut to the time left

    for _ in range(5):
        with pytest.raises(TimeoutError), deadline(0.01):
            breaker.call(socket_timeout_cut_to_the_deadline)
    assert breaker.local_stats().calls == 0 and breaker.state == "closed"
    with pytest.raises(TimeoutError):  # the same error without a deadline: the dependency's fault
        breaker.call(socket_timeout_cut_to_the_deadline)
    assert breaker.local_stats().failures == 1


def test_a_cut_call_that_had_already_run_past_slow_call_counts_as_slow(settings):
    breaker = breakers.get_or_create("dep3", minimum_calls=3, failure_rate=50, slow_call=0.01, slow_rate=50)

    def slow_then_cut():
        time.sleep(0.03)
        raise DeadlineExceeded()

    for _ in range(2):
        with pytest.raises(DeadlineExceeded):
            breaker.call(slow_then_cut)
    stats = breaker.local_stats()
    assert (stats.calls, stats.failures, stats.slow) == (2, 0, 2)
    with pytest.raises(DeadlineExceeded):
        breaker.call(slow_then_cut)
    assert breaker.state == "open"  # slow calls are evidence, at the slow_rate


def test_the_breakers_own_timeout_stays_a_failure_under_a_deadline(settings):
    breaker = breakers.get_or_create("dep4", minimum_calls=2, failure_rate=50, timeout=0.02)
    for _ in range(2):
        with pytest.raises(CallTimeout), deadline(5):
            breaker.call(time.sleep, 0.2)
    assert breaker.state == "open"


def test_a_deadline_cut_probe_hands_its_permit_back_without_closing_or_reopening(settings):
    breaker = breakers.get_or_create("dep5", minimum_calls=1, failure_rate=50, open_for=0.05, half_open_calls=1)
    with pytest.raises(RuntimeError):
        breaker.call(lambda: (_ for _ in ()).throw(RuntimeError()))
    assert breaker.state in ("open", "half_open")
    time.sleep(0.06)
    with pytest.raises(DeadlineExceeded):
        breaker.call(lambda: (_ for _ in ()).throw(DeadlineExceeded()))
    assert breaker.state == "half_open"  # neither closed by it nor re-opened: the next probe decides
    breaker.call(lambda: None)
    assert breaker.state == "closed"


@pytest.fixture
def report_routes(settings):
    settings.ROOT_URLCONF = "tests.urls"
    settings.MIDDLEWARE = MIDDLEWARE
    settings.RESILIENCE = {"HISTORY": False, "ROUTES": [{"path": "/report/", "timeout": 5}]}


def left(response):
    assert response.status_code == 200
    return response.json()["remaining"]


def test_an_untrusted_peer_cannot_shorten_the_deadline(report_routes):
    assert left(Client(REMOTE_ADDR="203.0.113.9").get("/report/", HTTP_X_REQUEST_TIMEOUT="0.5")) > 4
    assert left(Client(REMOTE_ADDR="203.0.113.9").get("/report/", HTTP_GRPC_TIMEOUT="100m")) > 4


def test_a_trusted_peer_shortens_the_deadline_but_not_below_the_floor(report_routes, settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "TRUSTED_PROXIES": ["10.0.0.0/8"]}
    assert 0.3 < left(Client(REMOTE_ADDR="10.1.2.3").get("/report/", HTTP_X_REQUEST_TIMEOUT="0.5")) <= 0.5
    assert 0.05 < left(Client(REMOTE_ADDR="10.1.2.3").get("/report/", HTTP_X_REQUEST_TIMEOUT="0.001")) <= 0.1
    settings.RESILIENCE = {**settings.RESILIENCE, "TIMEOUT_HEADER_FLOOR": 1}
    assert 0.9 < left(Client(REMOTE_ADDR="10.1.2.3").get("/report/", HTTP_X_REQUEST_TIMEOUT="0.2")) <= 1


def test_timeout_headers_any_and_none(report_routes, settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "TIMEOUT_HEADERS": "any"}
    assert left(Client(REMOTE_ADDR="203.0.113.9").get("/report/", HTTP_X_REQUEST_TIMEOUT="0.5")) <= 0.5
    settings.RESILIENCE = {**settings.RESILIENCE, "TIMEOUT_HEADERS": "none", "TRUSTED_PROXIES": ["10.0.0.0/8"]}
    assert left(Client(REMOTE_ADDR="10.1.2.3").get("/report/", HTTP_X_REQUEST_TIMEOUT="0.5")) > 4


@pytest.mark.parametrize("value", ["sometimes", "", None, 1])
def test_a_malformed_timeout_headers_setting_names_the_key(settings, value):
    from resilience.conf import resilience_settings
    from resilience.exceptions import ConfigurationError

    settings.RESILIENCE = {"TIMEOUT_HEADERS": value}
    with pytest.raises(ConfigurationError, match=r'RESILIENCE\["TIMEOUT_HEADERS"\]'):
        resilience_settings.values  # noqa: B018 - loads and validates
