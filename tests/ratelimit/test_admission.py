"""Per-client and per-route limits in ResilienceMiddleware, before authentication, over real Redis."""

import asyncio

import pytest
from django.conf import settings as django_settings
from django.test import AsyncClient, Client

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "resilience.middleware.ResilienceMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]


@pytest.fixture(params=["redis", "in-process"])
def limited(request, settings, key_prefix):
    settings.ROOT_URLCONF = "tests.urls"
    settings.MIDDLEWARE = MIDDLEWARE
    settings.RESILIENCE = {
        "HISTORY": False,
        "REDIS": django_settings.TEST_REDIS_URL if request.param == "redis" else None,
        "KEY_PREFIX": key_prefix,
        "TRUSTED_PROXIES": ["10.0.0.0/8"],
        "RATE_LIMITS": {"ip": "5/min"},
        "ROUTES": [{"path": "/named/", "rate": "2/min"}],
    }
    return request.param


def get(path, remote="198.51.100.9", **headers):
    return Client(REMOTE_ADDR=remote).get(path, **headers)


def test_the_client_limit_refuses_with_429_and_the_headers(limited):
    codes = [get("/report/").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    refused = get("/report/")
    assert refused.json() == {"detail": "Too many requests. Try again later."}
    assert 1 <= int(refused["Retry-After"]) <= 12
    assert refused["RateLimit-Policy"] == '"ip";q=5;w=60'
    assert refused["RateLimit"].startswith('"ip";r=0;t=')


def test_allowed_responses_are_untouched(limited):
    response = get("/report/")
    assert response.status_code == 200 and "Retry-After" not in response


def test_a_direct_client_cannot_escape_its_limit_with_forwarded_headers(limited):
    codes = [get("/report/", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code for n in range(7)]
    assert codes.count(200) == 5


def test_clients_behind_the_trusted_proxy_are_told_apart(limited):
    for n in range(5):
        assert get("/report/", remote="10.0.0.2", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code == 200
    assert get("/report/", remote="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.0").status_code == 200
    assert [get("/report/", remote="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.1").status_code for _ in range(5)][-1] == 429


def test_route_and_client_limits_are_one_all_or_nothing_decision(limited):
    assert [get("/named/").status_code for _ in range(3)] == [200, 200, 429]
    # the refused third request consumed nothing from the client's 5/min: three more pass elsewhere
    assert [get("/report/").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_the_route_limit_names_both_policies_in_its_header(limited):
    for _ in range(2):
        get("/named/")
    refused = get("/named/")
    assert refused.status_code == 429
    assert refused["RateLimit-Policy"] == '"ip";q=5;w=60, "route:path:/named/";q=2;w=60'


def test_a_shadow_limit_is_not_announced_in_a_429s_headers(limited, settings):
    settings.RESILIENCE = {**settings.RESILIENCE, "RATE_LIMITS": {"ip": {"rate": "1/min", "shadow": True}}}
    assert [get("/named/").status_code for _ in range(3)] == [200, 200, 429]  # the route's 2/min decides
    refused = get("/named/")
    assert refused["RateLimit-Policy"] == '"route:path:/named/";q=2;w=60'
    assert refused["RateLimit"].startswith('"route:path:/named/";r=0;t=') and 1 <= int(refused["Retry-After"]) <= 30


@pytest.mark.parametrize("xff", ["x" * 20_000, "\u0661\u0669\u0668.1.1.1", "1.2.3.4\r\nX-Evil: 1", ", , ,"])
def test_hostile_forwarded_headers_are_never_a_500(limited, xff):
    assert get("/report/", remote="10.0.0.2", HTTP_X_FORWARDED_FOR=xff).status_code == 200


def test_async_requests_are_limited_too(limited):
    async def burst():
        client = AsyncClient(REMOTE_ADDR="198.51.100.77")
        return [(await client.get("/async/report/")).status_code for _ in range(6)]

    assert asyncio.run(burst()) == [200] * 5 + [429]


@pytest.mark.parametrize(("value", "message"), [
    ({"RATE_LIMITS": {"ip": "lots"}}, 'RESILIENCE["RATE_LIMITS"]["ip"] rate must be a rate like'),
    ({"RATE_LIMITS": {"fail": "sometimes"}}, 'RESILIENCE["RATE_LIMITS"]["fail"] must be one of'),
    ({"RATE_LIMITS": {"ipv6_prefix": 200}}, '["ipv6_prefix"] must be a whole number from 32 to 128'),
    ({"RATE_LIMITS": {"per_ip": "1/s"}}, "unknown key(s) 'per_ip'"),
    ({"TRUSTED_PROXIES": ["10.0.0.0/33"]}, 'RESILIENCE["TRUSTED_PROXIES"][0] is not an IP network'),
    ({"ROUTES": [{"path": "/x/", "rate": "1/fortnight"}]}, 'RESILIENCE["ROUTES"] path:/x/ rate must be a rate like'),
])  # fmt: skip
def test_malformed_rate_settings_are_e012(settings, value, message):
    from django.core.checks import run_checks

    settings.RESILIENCE = {"HISTORY": False, **value}
    errors = [m for m in run_checks() if m.id == "resilience.E012"]
    assert len(errors) == 1 and message in errors[0].msg


def test_malformed_drf_rates_are_e012(settings):
    from django.core.checks import run_checks

    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"ip": "5/fortnight"}}
    errors = [m for m in run_checks() if m.id == "resilience.E012"]
    assert len(errors) == 1 and 'REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["ip"]' in errors[0].msg


def test_async_requests_never_block_the_event_loop_on_a_stalled_redis(settings, redis_server, key_prefix):
    import time

    from tests.faults.proxy import FaultProxy

    proxy = FaultProxy("127.0.0.1", redis_server.port)
    settings.ROOT_URLCONF = "tests.urls"
    settings.MIDDLEWARE = MIDDLEWARE
    settings.RESILIENCE = {"HISTORY": False, "REDIS": proxy.url(), "REDIS_TIMEOUT": 0.3, "KEY_PREFIX": key_prefix,
                           "RATE_LIMITS": {"ip": "100/min"}}  # fmt: skip

    async def scenario():
        client = AsyncClient(REMOTE_ADDR="198.51.100.99")
        await client.get("/async/report/")  # connected through the proxy
        proxy.blackhole()
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        started = time.monotonic()
        response = await client.get("/async/report/")  # the limiter waits up to 0.3 s on Redis, then fails open
        elapsed = time.monotonic() - started
        stop.set()
        await tick_task
        return response.status_code, ticks, elapsed

    try:
        status, ticks, elapsed = asyncio.run(scenario())
    finally:
        proxy.close()
    assert status == 200
    assert elapsed >= 0.25 and ticks >= elapsed / 0.01 * 0.5  # the loop kept ticking while Redis stalled
