"""ResilientSession against a real local HTTP server."""

import time

import pytest
import requests

from resilience import CircuitOpenError, DeadlineExceeded, breakers, deadline
from resilience.http import ResilientSession

from .conftest import free_port
from .httpserver import LocalHTTPServer


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
