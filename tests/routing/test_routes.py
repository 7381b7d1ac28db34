"""Routes: every matching route applies (fields inherited from broader ones, caps and rates nested),
and path_regex runs in linear time (RE2), so no pattern lets a crafted path burn seconds of CPU."""

import threading
import time

import pytest
from django.core.checks import run_checks
from django.test import Client

from resilience.exceptions import ConfigurationError
from resilience.routing.routes import RouteTable
from tests import urls as test_urls

MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "resilience.middleware.ResilienceMiddleware"]
DEMO_ROUTES = [  # project/settings.py, as the demo ships it
    {"path": "*", "timeout": 30},
    {"path": "/api/*", "timeout": 5, "max_concurrency": 100},
    {"name": "quote", "timeout": 3},
]


def test_the_demos_quote_route_keeps_the_api_cap_and_sets_its_own_timeout():
    """``/api/quote/`` matched its name route, which has no max_concurrency, and escaped the ``/api/*`` cap."""
    table = RouteTable(DEMO_ROUTES)
    quote, api = table.match("/api/quote/", "project.urls"), table.match("/api/chaos/", "project.urls")
    assert quote.timeout == 3 and quote.label == "name:quote"
    assert api.bulkhead in quote.bulkheads and quote.max_concurrency == 100
    assert api.timeout == 5


def test_a_decorated_view_keeps_the_cap_and_rate_of_its_url_names_route():
    """Found by a README audit: the decorator's route replaced the URL name's, so a cap or rate set by
    name silently stopped applying once someone decorated the view (say, for a timeout)."""
    table = RouteTable([{"name": "decorated", "retry_after": 5, "max_concurrency": 1, "rate": "10/min"}])
    route = table.match("/decorated/", "tests.urls")  # @resilience_route(timeout=0.75), URL name "decorated"
    named = table.by_name["decorated"]
    assert route.timeout == 0.75 and route.retry_after == 5  # the decorator first, the rest from the name
    assert named.bulkhead in route.bulkheads and route.rates == named.rates


def test_unset_fields_come_from_the_most_specific_route_that_sets_them():
    table = RouteTable([
        {"path": "*", "timeout": 30, "retry_after": 9, "trust_timeout_header": False},
        {"path": "/api/*", "timeout": 5},
        {"path": "/api/export/", "retry_after": 2},
        {"path": "/api/stream/", "timeout": None},  # explicitly: no deadline
    ])  # fmt: skip
    export = table.match("/api/export/")
    assert (export.timeout, export.retry_after, export.trust_timeout_header) == (5, 2, False)
    assert table.match("/api/stream/").timeout is None
    assert table.match("/elsewhere/").timeout == 30


@pytest.fixture
def wired(settings):
    settings.ROOT_URLCONF = "tests.urls"
    settings.MIDDLEWARE = MIDDLEWARE


def hold_two_and_try_a_third(path="/hold/"):
    while test_urls.inside.acquire(blocking=False):  # an earlier request's "inside" must not count for ours
        pass
    test_urls.gate.clear()
    results = []
    holders = [threading.Thread(target=lambda: results.append(Client().get(path))) for _ in range(2)]
    for t in holders:
        t.start()
    for _ in holders:
        assert test_urls.inside.acquire(timeout=10)
    third = Client().get(path)
    test_urls.gate.set()
    for t in holders:
        t.join(10)
    return [r.status_code for r in results], third


def test_a_specific_route_without_a_cap_is_held_by_the_broader_routes_cap(wired, settings):
    settings.RESILIENCE = {"HISTORY": False, "ROUTES": [{"path": "/ho*", "max_concurrency": 2, "retry_after": 4},
                                                        {"path": "/hold/", "timeout": 5}]}  # fmt: skip
    held, third = hold_two_and_try_a_third()
    assert held == [200, 200] and third.status_code == 503 and third["Retry-After"] == "4"
    assert Client().get("/hold/").status_code == 200  # every permit came back


def test_caps_nest_the_broader_cap_applies_on_top_of_the_specific_one(wired, settings):
    settings.RESILIENCE = {"HISTORY": False, "ROUTES": [{"path": "/ho*", "max_concurrency": 2},
                                                        {"path": "/hold/", "max_concurrency": 10}]}  # fmt: skip
    held, third = hold_two_and_try_a_third()
    assert held == [200, 200] and third.status_code == 503
    from resilience.middleware import route_table

    assert [b.active for b in route_table().match("/hold/").bulkheads] == [0, 0]  # a refusal takes no permit anywhere


def test_per_client_rates_of_every_matching_route_apply(wired, settings):
    settings.RESILIENCE = {"HISTORY": False, "ROUTES": [{"path": "*", "rate": "2/min"}, {"path": "/report/", "rate": "10/min"}]}
    client = Client(REMOTE_ADDR="198.51.100.150")
    assert [client.get("/report/").status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/named/").status_code == 429  # the broad limit counts every path


@pytest.mark.parametrize("pattern", [r"^/(a+)+$", r"^/(a*)*$", r"^/(a|aa)+$", r"^/(\w+\w+)+x$", r"^/(.*)/(.*)/(.*)x$"])
def test_no_path_regex_costs_more_than_linear_time(pattern):
    table = RouteTable([{"path_regex": pattern, "timeout": 1}])
    started = time.process_time()
    for path in ("/" + "a" * 30 + "b", "/" + "/" * 4000, "/" + "aa" * 2000 + "!"):
        table.match(path)
    assert time.process_time() - started < 0.5  # Python's re takes 2.8 s for (a+)+ on 26 characters, minutes on 30


@pytest.mark.parametrize(("pattern", "message"), [
    (r"^/(a)\1$", "RE2 does not support"),
    (r"^/(?=x)", "RE2 does not support"),
    (r"(unclosed", "does not compile"),
])  # fmt: skip
def test_patterns_re2_cannot_run_are_e011(settings, pattern, message):
    settings.RESILIENCE = {"ROUTES": [{"path_regex": pattern}]}
    errors = [m for m in run_checks() if m.id == "resilience.E011"]
    assert len(errors) == 1 and message in errors[0].msg and 'RESILIENCE["ROUTES"][0]["path_regex"]' in errors[0].msg


def test_without_re2_a_path_regex_is_a_clear_error(monkeypatch):
    from resilience.routing import routes

    monkeypatch.setattr(routes, "_regex_engine", lambda: None)
    with pytest.raises(ConfigurationError, match=r"needs the google-re2 package .*django-resilience\[routes\]"):
        RouteTable([{"path_regex": r"^/reports/\d+/$"}])
    assert RouteTable([{"path": "/reports/*"}]).match("/reports/1/") is not None  # globs need nothing


def test_a_regex_route_still_matches_what_it_should():
    table = RouteTable([{"path": "*", "timeout": 30}, {"path_regex": r"^/items/\d+/$", "timeout": 9}])
    assert table.match("/items/42/").timeout == 9
    assert table.match("/items/x/").timeout == 30


def test_a_decorated_view_is_its_route_from_the_first_request_of_a_fresh_process(monkeypatch):
    """The middleware matches before Django imports the URLconf: the table imports it itself,
    and never keeps an answer computed before the decorated views registered."""
    import sys

    from django.urls import clear_url_caches

    from resilience.routing import routes

    monkeypatch.setattr(routes, "_DECORATED", [])  # as in a fresh process: no URLconf imported yet
    monkeypatch.delitem(sys.modules, "tests.urls_fresh", raising=False)
    clear_url_caches()
    table = routes.RouteTable([{"path": "*", "timeout": 30}])
    assert [table.match("/fresh/", "tests.urls_fresh").timeout for _ in range(2)] == [0.5, 0.5]
