"""ResilienceMiddleware over real views: deadlines from routes and headers, bulkheads, 504s, checks."""

import threading

import pytest
from django.core.checks import run_checks
from django.test import AsyncClient, Client

from . import urls as test_urls

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "resilience.middleware.ResilienceMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROUTES = [
    {"path": "*", "timeout": 30},
    {"path": "/api/*", "timeout": 10},
    {"path_regex": r"^/items/\d+/$", "timeout": 9},
    {"path": "/report/", "timeout": 5},
    {"name": "named", "timeout": 2},
    {"name": "item", "timeout": 3},
    {"path": "/hold/", "max_concurrency": 2, "retry_after": 7},
]


@pytest.fixture(autouse=True)
def wired(settings):
    settings.ROOT_URLCONF = "tests.urls"
    settings.MIDDLEWARE = MIDDLEWARE
    settings.RESILIENCE = {"HISTORY": False, "ROUTES": ROUTES, "TRUSTED_PROXIES": ["127.0.0.1/32"]}  # the test client's peer


def left(response):
    assert response.status_code == 200, response.content
    return response.json()["remaining"]


@pytest.mark.parametrize(("url", "route_timeout"), [
    ("/report/", 5), ("/named/", 2), ("/items/4/", 3), ("/api/v1/deep/", 10), ("/decorated/", 0.75), ("/class/", 1.25),
])  # fmt: skip
def test_the_most_specific_route_sets_the_deadline(url, route_timeout):
    remaining = left(Client().get(url))
    assert route_timeout - 0.5 < remaining <= route_timeout


def test_a_path_no_route_matches_runs_without_a_deadline(settings):
    settings.RESILIENCE = {"HISTORY": False, "ROUTES": [{"path": "/elsewhere/", "timeout": 1}]}
    assert left(Client().get("/report/")) is None


def test_callers_timeout_header_shortens_the_deadline():
    assert 0.3 < left(Client().get("/report/", HTTP_X_REQUEST_TIMEOUT="0.5")) <= 0.5
    assert 0.1 < left(Client().get("/report/", HTTP_GRPC_TIMEOUT="250m")) <= 0.25


def test_callers_timeout_header_never_lengthens_the_route():
    assert 4 < left(Client().get("/report/", HTTP_X_REQUEST_TIMEOUT="3600")) <= 5
    assert 4 < left(Client().get("/report/", HTTP_GRPC_TIMEOUT="2H")) <= 5


def test_the_shorter_of_two_caller_headers_wins():
    assert left(Client().get("/report/", HTTP_X_REQUEST_TIMEOUT="2", HTTP_GRPC_TIMEOUT="500m")) <= 0.5


@pytest.mark.parametrize("value", [
    "-1", "0", "nan", "NaN", "inf", "-inf", "1e309", "abc", "", " ", "1,5", "0x10", "5S5", "9" * 40, "1" * 10_000, "١",
])  # fmt: skip
def test_hostile_timeout_headers_are_ignored_and_the_route_applies(value):
    response = Client().get("/report/", HTTP_X_REQUEST_TIMEOUT=value, HTTP_GRPC_TIMEOUT=value)
    assert 4 < left(response) <= 5


def test_a_route_can_refuse_to_trust_the_callers_header(settings):
    settings.RESILIENCE = {
        "HISTORY": False,
        "ROUTES": [{"path": "/report/", "timeout": 5, "trust_timeout_header": False}],
        "TRUSTED_PROXIES": ["127.0.0.1/32"],
    }
    assert left(Client().get("/report/", HTTP_X_REQUEST_TIMEOUT="0.5")) > 4


def test_deadline_exceeded_becomes_a_small_504():
    response = Client().get("/expire/")
    assert response.status_code == 504
    assert response.json() == {"detail": "The request took too long."}


def test_expired_aws_credentials_are_a_503_with_retry_after_not_a_500():
    response = Client().get("/no-credentials/")
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert "role" not in response.content.decode()  # no internals


def test_bulkhead_refuses_excess_requests_with_503_and_retry_after():
    while test_urls.inside.acquire(blocking=False):  # an earlier request's "inside" must not count for ours
        pass
    test_urls.gate.clear()
    results = []

    def request():
        results.append(Client().get("/hold/"))

    holders = [threading.Thread(target=request) for _ in range(2)]
    for t in holders:
        t.start()
    for _ in holders:
        assert test_urls.inside.acquire(timeout=10)
    refused = Client().get("/hold/")
    test_urls.gate.set()
    for t in holders:
        t.join(10)
    assert refused.status_code == 503 and refused["Retry-After"] == "7"
    assert refused.json() == {"detail": "The service is busy. Try again shortly."}
    assert [r.status_code for r in results] == [200, 200]
    assert Client().get("/hold/").status_code == 200  # permits came back


def test_async_views_get_the_deadline_and_504(settings):
    import asyncio

    async def scenario():
        client = AsyncClient()
        ok = await client.get("/async/report/", headers={"X-Request-Timeout": "1.5"})
        expired = await client.get("/async/expire/")
        return ok, expired

    ok, expired = asyncio.run(scenario())
    assert 1.0 < ok.json()["remaining"] <= 1.5
    assert expired.status_code == 504


def ids():
    return sorted(m.id for m in run_checks() if m.id.startswith("resilience.E01") or m.id.startswith("resilience.W01"))


def test_checks_accept_the_recommended_position():
    assert ids() == []


def test_checks_flag_the_middleware_after_authentication(settings):
    settings.MIDDLEWARE = [MIDDLEWARE[0], *MIDDLEWARE[2:], MIDDLEWARE[1]]
    assert ids() == ["resilience.E010", "resilience.E010"]  # after sessions and after auth


def test_checks_flag_the_middleware_before_security(settings):
    settings.MIDDLEWARE = [MIDDLEWARE[1], MIDDLEWARE[0], *MIDDLEWARE[2:]]
    assert ids() == ["resilience.E010"]


@pytest.mark.parametrize(("routes", "message"), [
    ([{"path_regex": "(unclosed"}], 'RESILIENCE["ROUTES"][0]["path_regex"] does not compile'),
    ([{"path": "/a/", "name": "b"}], 'RESILIENCE["ROUTES"][0] needs exactly one of "name", "path" or "path_regex"'),
    ([{"path": "/a/", "timeout": -1}], 'RESILIENCE["ROUTES"][0]["timeout"] must be a number above 0'),
    ([{"path": "/a/", "timeout": float("nan")}], '["timeout"] must be a number above 0'),
    ([{"path": "/a/", "max_concurrency": 0}], '["max_concurrency"] must be a whole number from 1'),
    ([{"path": "/a/", "timout": 1}], "unknown key(s) 'timout'"),
    ([{"path": "/a/"}, "oops"], 'RESILIENCE["ROUTES"][1] must be a dict'),
    ({"path": "/a/"}, 'RESILIENCE["ROUTES"] must be a list'),
])  # fmt: skip
def test_malformed_routes_are_e011_with_the_entry_named(settings, routes, message):
    settings.RESILIENCE = {"ROUTES": routes}
    errors = [m for m in run_checks() if m.id == "resilience.E011"]
    assert len(errors) == 1 and message in errors[0].msg


def test_a_route_naming_a_missing_url_is_w011(settings):
    settings.RESILIENCE = {"ROUTES": [{"name": "no-such-url", "timeout": 1}, {"name": "named", "timeout": 1}]}
    assert [m.id for m in run_checks() if m.id == "resilience.W011"] == ["resilience.W011"]


def test_routes_resolve_with_the_urlconf_an_earlier_middleware_chose(settings):
    settings.MIDDLEWARE = [MIDDLEWARE[0], "tests.urls_alt.AltUrlconfMiddleware", *MIDDLEWARE[1:]]
    assert 1.5 < left(Client().get("/other/", HTTP_X_ALT_SITE="1")) <= 2  # the "named" route of that URLconf


def test_the_resolved_route_cache_is_bounded():
    from resilience.middleware import route_table
    from resilience.routing.routes import RESOLVE_CACHE_SIZE

    table = route_table()
    for n in range(RESOLVE_CACHE_SIZE + 10):
        table.match(f"/no/such/{n}/")
    assert len(table._matched) <= RESOLVE_CACHE_SIZE


def test_admission_checks_can_refuse_a_request_and_the_bulkhead_permit_comes_back():
    from django.http import JsonResponse

    from resilience.middleware import admission_checks, route_table

    seen = []

    def only_hold(request, route):
        seen.append(route.label)
        return JsonResponse({"detail": "limited"}, status=429) if request.headers.get("X-Limit") else None

    admission_checks.append(only_hold)
    try:
        refused = Client().get("/hold/", HTTP_X_LIMIT="1")
        assert refused.status_code == 429 and seen == ["path:/hold/"]
        assert route_table().match("/hold/").bulkhead.active == 0
        assert left(Client().get("/report/")) > 4  # no refusal: the request goes on as usual
    finally:
        admission_checks.remove(only_hold)


@pytest.mark.parametrize("failure", ["cancelled", "raises"])
def test_an_async_request_gone_while_its_checks_run_gives_its_permit_back(settings, failure):
    """Found by a README audit: under ASGI a client that disconnected while the admission checks ran in
    their thread left the permit taken for good (400 aborted requests: a capped route answered 503
    until the process restarted). A check that raises kept it too."""
    import asyncio
    import time

    from django.http import HttpResponse
    from django.test import AsyncRequestFactory

    from resilience import middleware

    settings.RESILIENCE = {"HISTORY": False, "ROUTES": [{"path": "/hold/", "max_concurrency": 1}]}

    def slow_check(request, route):
        time.sleep(0.3)
        if failure == "raises":
            raise RuntimeError("a broken check")

    slow_check.may_block = lambda: True  # type: ignore[attr-defined]

    async def view(request):
        return HttpResponse("ok")

    async def scenario():
        mw = middleware.ResilienceMiddleware(view)
        task = asyncio.ensure_future(mw(AsyncRequestFactory().get("/hold/")))
        if failure == "cancelled":
            await asyncio.sleep(0.05)
            task.cancel()  # what Django does when the client disconnects
        try:
            await task
        except (asyncio.CancelledError, RuntimeError):
            pass
        await asyncio.sleep(0.5)  # the check's thread finishes (and took the permit)
        middleware.admission_checks.remove(slow_check)
        return (await mw(AsyncRequestFactory().get("/hold/"))).status_code

    middleware.admission_checks.append(slow_check)
    try:
        assert asyncio.run(scenario()) == 200  # the cap of 1 is free again
    finally:
        if slow_check in middleware.admission_checks:
            middleware.admission_checks.remove(slow_check)
