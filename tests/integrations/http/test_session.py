"""ResilientSession against a real local HTTP server."""

import time

import pytest
import requests

from resilience import CircuitOpenError, DeadlineExceeded, breakers, deadline
from resilience.integrations.http.session import ResilientSession
from tests.conftest import free_port
from tests.httpserver import LocalHTTPServer


@pytest.fixture
def server():
    s = LocalHTTPServer()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def fast_policy(settings):
    settings.RESILIENCE = {
        "HISTORY": False,
        "RETRY": {"http": {"base": 0.001, "cap": 0.005, "attempts": 3, "budget": None}},
        "BREAKERS": {"default": {"minimum_calls": 4, "failure_rate": 50, "open_for": 30}},
    }


def requests_to(server, path):
    return [s for s in server.seen if s[1] == path]


def test_idempotent_request_is_retried_through_503s_to_success(server):
    response = ResilientSession().get(server.url("/flaky2/a"))
    assert response.status_code == 200
    assert len(requests_to(server, "/flaky2/a")) == 3


def test_post_is_never_retried_and_the_503_is_returned(server):
    response = ResilientSession().post(server.url("/503"), json={"charge": 10})
    assert response.status_code == 503
    assert len(requests_to(server, "/503")) == 1


def test_when_retries_are_spent_the_last_response_is_returned(server):
    response = ResilientSession().get(server.url("/flaky9/b"))
    assert response.status_code == 503 and len(requests_to(server, "/flaky9/b")) == 3


def test_client_errors_are_returned_untouched_and_not_retried(server):
    assert ResilientSession().get(server.url("/404")).status_code == 404
    assert len(requests_to(server, "/404")) == 1


def test_remaining_deadline_is_sent_downstream(server):
    with deadline(2.0):
        ResilientSession().get(server.url("/200"))
    sent = float(requests_to(server, "/200")[0][2]["X-Request-Timeout"])
    assert 1.5 < sent <= 2.0


def test_no_deadline_header_without_a_deadline(server):
    ResilientSession().get(server.url("/200"))
    assert "X-Request-Timeout" not in requests_to(server, "/200")[0][2]


def test_a_slow_server_is_cut_off_at_the_deadline(server):
    started = time.monotonic()
    with deadline(0.3), pytest.raises(DeadlineExceeded):
        ResilientSession(timeout=10).get(server.url("/200/sleep2"))
    assert time.monotonic() - started < 0.8


def test_nothing_is_sent_once_the_deadline_has_passed(server):
    with deadline(0.0), pytest.raises(DeadlineExceeded):
        ResilientSession().get(server.url("/200"))
    assert server.seen == []


def test_server_errors_open_the_hosts_breaker_and_calls_stop_reaching_it(server):
    session = ResilientSession()
    for _ in range(2):
        session.get(server.url("/500"))  # 500 is a failure, not retried: 2 requests, 2 failures
    for _ in range(2):
        session.get(server.url("/200"))
    assert breakers.get(session.breaker_name(server.url())).state == "open"
    seen = len(server.seen)
    with pytest.raises(CircuitOpenError):
        session.get(server.url("/200"))
    assert len(server.seen) == seen


def test_each_host_has_its_own_breaker(server):
    session = ResilientSession()
    assert session.breaker_name("https://API.example.com/x") == "http:https://api.example.com:443"
    assert session.breaker_name(server.url("/a")) != session.breaker_name("http://127.0.0.1:1/")


def test_connection_refused_is_retried_then_raised():
    session = ResilientSession(timeout=1)
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        session.get(f"http://127.0.0.1:{free_port()}/")
    assert time.monotonic() - started < 2


def test_the_http_policys_attempt_timeout_bounds_each_attempt(server, settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "RETRY": {"http": {"attempt_timeout": 0.2, "attempts": 1, "budget": None}}}
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        ResilientSession(timeout=10).get(server.url("/200/sleep2"))
    assert time.monotonic() - started < 0.8


# -- hosts chosen by clients cannot grow the breaker registry ----------------------------------------
def refused_hosts(count):
    """``count`` distinct scheme://host:port origins on this machine, none of them listening."""
    ports = set()
    while len(ports) < count:
        ports.add(free_port())
    return [f"http://127.0.0.1:{port}/" for port in ports]


def fetch_all(session, urls):
    for url in urls:
        with pytest.raises((requests.ConnectionError, CircuitOpenError)):
            session.get(url)


def http_breakers():
    return [name for name in breakers.names() if name.startswith("http:")]


def test_client_chosen_hosts_cannot_grow_the_breaker_registry_without_bound():
    from resilience.integrations.http.session import DEFAULT_MAX_HOST_BREAKERS as bound

    fetch_all(ResilientSession(timeout=1), refused_hosts(bound + 150))
    assert len(http_breakers()) <= bound + 1  # the hosts' own breakers and one overflow breaker


def test_the_bound_holds_for_the_process_not_per_session():
    from resilience.integrations.http.session import DEFAULT_MAX_HOST_BREAKERS as bound

    for url in refused_hosts(bound + 50):
        fetch_all(ResilientSession(timeout=1), [url])  # a new session per request, as views often do
    assert len(http_breakers()) <= bound + 1


def test_past_the_bound_new_hosts_share_the_overflow_breaker_and_one_event_says_so(server, events):
    session = ResilientSession(timeout=1, max_host_breakers=3)
    fetch_all(session, refused_hosts(3))
    assert session.get(server.url("/200")).status_code == 200  # a new host past the bound still works ...
    assert session.breaker_for(server.url("/200")) == "http:overflow"  # ... through the shared breaker
    fetch_all(session, refused_hosts(20))
    assert len(http_breakers()) == 4 and "http:overflow" in http_breakers()
    overflow = [e for e in events if e.kind == "host_overflow"]
    assert [(e.area, e.name, e.fields) for e in overflow] == [("http", "http:overflow", {"max_hosts": 3})]


def test_hosts_within_the_bound_keep_their_own_breaker(server):
    session = ResilientSession(max_host_breakers=3)
    session.get(server.url("/200"))
    fetch_all(session, refused_hosts(10))
    assert session.breaker_for(server.url("/200")) == session.breaker_name(server.url("/200"))


def test_a_host_with_a_configured_breaker_always_has_its_own(server, settings):
    name = ResilientSession().breaker_name(server.url())
    settings.RESILIENCE = {**settings.RESILIENCE, "BREAKERS": {**settings.RESILIENCE["BREAKERS"], name: {"minimum_calls": 50}}}
    session = ResilientSession(timeout=1, max_host_breakers=2)
    fetch_all(session, refused_hosts(5))
    assert session.breaker_for(server.url("/200")) == name
    assert session.get(server.url("/200")).status_code == 200
    assert breakers.get(name).config.minimum_calls == 50


def test_host_breakers_in_the_shared_redis_are_bounded_too(settings, key_prefix, test_redis):
    from django.conf import settings as django_settings

    from resilience.integrations.http.session import DEFAULT_MAX_HOST_BREAKERS as bound

    settings.RESILIENCE = {**settings.RESILIENCE, "REDIS": django_settings.TEST_REDIS_URL, "KEY_PREFIX": key_prefix}
    fetch_all(ResilientSession(timeout=1), refused_hosts(bound + 150))
    names = test_redis.smembers(f"{key_prefix}:breakers")
    assert len([n for n in names if n.startswith(b"http:")]) <= bound + 1


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_a_malformed_host_bound_is_refused(bad):
    from resilience.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="max_host_breakers"):
        ResilientSession(max_host_breakers=bad)


def test_requests_cut_off_by_the_callers_deadline_never_open_the_hosts_breaker(server):
    session = ResilientSession(timeout=5)
    url = server.url("/200/sleep0.3")
    for _ in range(8):  # twice minimum_calls, every one cut by the deadline
        with deadline(0.05), pytest.raises(DeadlineExceeded):
            session.get(url)
    breaker = breakers.get(session.breaker_for(url))
    assert breaker.state == "closed" and breaker.local_stats().calls == 0
    assert session.get(url).status_code == 200  # everyone else still reaches the host
